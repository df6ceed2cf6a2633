"""Marks for tests that decode with the real SmolLM2-135M weights (the `model` marker):
skipped, with the reason, when the weights package is not installed."""
import pytest

from gcsim.llm import LLMError, find_smollm2_gguf


def weights_missing() -> str:
    """'' when the weights are installed, else the message saying how to install them."""
    try:
        find_smollm2_gguf()
        return ""
    except LLMError as exc:
        return str(exc)


needs_weights = [pytest.mark.model,
                 pytest.mark.skipif(bool(weights_missing()), reason=f"SmolLM2 weights unavailable: {weights_missing()}")]
