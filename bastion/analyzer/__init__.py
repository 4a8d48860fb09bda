"""Prompt analysis: a versioned library of rule patterns (structure, clarity, token efficiency,
cache-friendliness, template hygiene) run over a prompt's text, and suggestions with a rationale,
a confidence, an estimated token delta and the spans they concern (docs/ANALYZER.md)."""
