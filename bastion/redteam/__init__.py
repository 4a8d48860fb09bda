"""Red team: an attack library shipped as data (YAML under ``attacks/``), encodings and perturbations
applied to its payloads, deterministic judges (canary, system-prompt overlap, planted PII, rogue
strings, refusals and technique markers), the seeded expansion of a selection into attempts, and the
scoring of a run's answers into a versioned JSON report and a self-contained HTML page.
See docs/REDTEAM.md.

Capability only: nothing here knows the gateway or HTTP; runs, jobs and routes call into it.
"""
