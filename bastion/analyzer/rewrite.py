"""The LLM-assisted rewrite: what the model is asked, and how its answer is read.

Only the system prompt is rewritten (the user template and its variables stay as they are).
The model gets the prompt and the findings' titles and suggestions, nothing else; its answer is
read between ``<prompt>`` tags. What comes back is only ever offered as a new draft version,
never applied or labelled (``AnalyzerService.rewrite``).
"""

from __future__ import annotations

import re
from typing import Any

from bastion.analyzer.model import Analysis
from bastion.errors import UpstreamError

INSTRUCTIONS = (
    "You improve prompts for large language models. You receive a system prompt and the findings "
    "of a rule-based review of it. Rewrite the system prompt so that it resolves the findings while "
    "keeping its meaning: keep every instruction, fact, name, number and placeholder (such as "
    "{{ name }}) exactly as written, add no new policies or facts, and do not shorten lists of data. "
    "Return only the rewritten system prompt between <prompt> and </prompt>, with nothing before or after."
)
REQUEST = "Rewrite the prompt as instructed."
_ANSWER = re.compile(r"<prompt>\s*(.*?)\s*</prompt>", re.DOTALL)
_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n```$", re.DOTALL)
#: Findings named in the request at most (the most confident first).
MAX_FINDINGS = 20


def rewrite_messages(system_prompt: str, analysis: Analysis, extra: str | None = None) -> list[dict[str, Any]]:
    """The chat the model is given. The prompt and the findings travel in the system message, as
    the prompt itself does when it is served (the input guard scans what users send, and an
    author's prompt is not that); the user message only asks for the rewrite."""
    findings = [
        f"- {finding.title} ({finding.pattern_id}, confidence {finding.confidence:.2f}): {finding.suggestion}"
        for finding in analysis.findings[:MAX_FINDINGS]
    ]
    lines = [INSTRUCTIONS, "", "Findings:", *(findings or ["- none; tighten wording only where it saves tokens"])]
    if extra:
        lines += ["", "Also: " + extra.strip()]
    lines += ["", "The prompt:", "<prompt>", system_prompt, "</prompt>"]
    return [{"role": "system", "content": "\n".join(lines)}, {"role": "user", "content": REQUEST}]


def read_rewrite(answer: str) -> str:
    """The rewritten prompt in the model's answer; an unusable answer is a 502."""
    found = _ANSWER.search(answer)
    text = found.group(1) if found else answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    text = text.strip()
    if not text or "<prompt>" in text or "</prompt>" in text:
        raise UpstreamError(
            "The model's answer holds no rewritten prompt; try again or another model.", retryable=False
        )
    return text
