"""The local CPU engine: serves the subset of vLLM's OpenAI HTTP protocol that the proxy uses.

Needs the `engine` extra (torch, transformers). The proxy never imports this package; it talks
to the engine over HTTP exactly as it talks to `vllm serve`. Importing this package is cheap:
torch and transformers are imported by the submodules that need them.
"""
