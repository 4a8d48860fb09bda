"""Insights over the ledger: roll-up tables at 5-minute, hour and day grain kept by a background
job from a watermark, seed 004's metrics (token efficiency, cognitive waste, adversarial stress,
semantic drift, fragility) and the alerts over them, and the queries the insights API serves.
See docs/INSIGHTS.md.

Capability only: nothing here knows the gateway or HTTP.
"""
