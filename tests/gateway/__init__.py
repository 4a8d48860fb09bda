"""Gateway core test suite: the running gateway (``bastion serve`` subprocess) driven with the real
OpenAI and Anthropic SDKs against the embedded models and a scriptable fake upstream, plus unit
tests of the router and configuration and an in-process hypothesis fuzz of every endpoint.

Run: ``.venv/bin/python -m pytest tests/gateway`` (about two minutes on two cores).
"""
