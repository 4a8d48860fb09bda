"""Experiments over the gateway's traffic: definitions, sticky assignment, metrics from the ledger,
client feedback, results and reports, bandit weight updates (docs/EXPERIMENTS.md).

A capability package: plain values in, values out; the gateway's experiment stage and the admin
API adapt requests to it. The statistics are ``bastion.stats``.
"""
