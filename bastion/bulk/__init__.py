"""Bulk on agent sessions (seed 000): many messages to one session's vault prompt as one background
run, with the shared prefix cached upstream (docs/BULK.md)."""
