"""The response caches (docs/CACHES.md): an exact cache keyed on everything that shapes an answer,
and an opt-in semantic cache over the embedded MiniLM model with a deterministic polarity check.

A capability package: it takes plain values (a tenant id, a resolved model name, an OpenAI-shaped
body, the stages' verdicts) and returns values; the gateway's cache stage adapts the request
context to it (``bastion/gateway/stages/cache.py``).
"""
