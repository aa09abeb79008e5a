"""deepguard guard proxy: an OpenAI-compatible server that forbids answer prefilling and watches for refusal recovery."""

__version__ = "0.1.0"
