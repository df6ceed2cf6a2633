"""Fixtures shared by several test modules."""
import pytest


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M, loaded once for the whole run (about 10 s: the GGUF's weights are
    dequantized); the decoder keeps no state between calls. Tests that use it are marked
    `model` (tests/weights.py) and skipped without the weights."""
    from gcsim.llm import SmolLM2
    return SmolLM2.load()
