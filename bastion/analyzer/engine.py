"""The analyzer: every rule of the library over one prompt, findings ordered by confidence and
token saving. Pure and synchronous (no I/O once the library is loaded); about a millisecond per
thousand tokens, so the gateway runs it inline (bench/analyzer_bench.py)."""

from __future__ import annotations

import time
from typing import Literal

# The built-in detectors register themselves on import.
from bastion.analyzer import template_rules, text_rules  # noqa: F401
from bastion.analyzer.library import Library, default_library
from bastion.analyzer.model import Analysis, Finding, PromptText
from bastion.analyzer.rules import Rule, build_rule
from bastion.analyzer.scan import Scan
from bastion.analyzer.tokens import Tokenizer, counter, token_report, tokenizer_of_model


class Analyzer:
    def __init__(self, library: Library | None = None) -> None:
        self.library = library or default_library()
        self.rules: tuple[Rule, ...] = tuple(build_rule(pattern) for pattern in self.library.patterns)

    def analyze(
        self, prompt: PromptText, *, tokenizer: Tokenizer | Literal["auto"] | None = "auto", only: str | None = None
    ) -> Analysis:
        """Findings for ``prompt``. ``tokenizer``: the model's own tokenizer if we have it (exact
        counts), None for none (estimates), ``auto``: told by the prompt's model name. ``only``:
        run just the pattern with that id (the library's own tests)."""
        started = time.perf_counter()
        if tokenizer == "auto":
            tokenizer = tokenizer_of_model(prompt.model)
        scan = Scan(prompt, counter(tokenizer)[0])
        findings: list[Finding] = []
        for rule in self.rules:
            if only is not None and rule.pattern.id != only:
                continue
            found = rule.run(scan)
            if found is not None:
                findings.append(found)
        findings.sort(key=lambda f: (-f.confidence, f.token_delta, f.pattern_id))
        tokens = token_report(prompt, tokenizer)
        return Analysis(
            library_version=self.library.version,
            tokens=tokens,
            findings=tuple(findings),
            structure=dict(scan.structure),
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
        )


_default: Analyzer | None = None


def default_analyzer() -> Analyzer:
    global _default
    if _default is None:
        _default = Analyzer()
    return _default
