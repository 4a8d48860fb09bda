"""Batches: OpenAI's Batch API and Anthropic's Message Batches API over the job system
(docs/BATCHES.md). Each line runs through a ``LineRunner``: the gateway's pipeline, as the
batch's owner."""
