"""Bastion's guard, the reflex layer: fast checks on what goes into and comes out of a model.

Input: PII, secrets, prompt injection (including encoded and obfuscated payloads), invisible text.
Output: system-prompt leaks (canary and overlap with the real prompt), PII and secrets, also on
streams. Each scanner runs in a mode set by ``GuardPolicy``: off, flag, redact or block.

    guard = InputGuard(GuardPolicy())
    result = guard.scan_messages(messages)
    if result.blocked:
        raise ContentBlocked(BLOCKED_MESSAGE)
"""

from bastion.config.guard_policy import ALL_PII_ENTITIES, DEFAULT_PII_ENTITIES, GuardPolicy, Mode
from bastion.guard.engine import InputGuard, OutputGuard
from bastion.guard.leak import make_canary, plant_canary
from bastion.guard.models import BLOCKED_MESSAGE, Action, Finding, GuardResult, Verdict
from bastion.guard.streaming import StreamingOutputGuard

__all__ = [
    "ALL_PII_ENTITIES",
    "BLOCKED_MESSAGE",
    "DEFAULT_PII_ENTITIES",
    "Action",
    "Finding",
    "GuardPolicy",
    "GuardResult",
    "InputGuard",
    "Mode",
    "OutputGuard",
    "StreamingOutputGuard",
    "Verdict",
    "make_canary",
    "plant_canary",
]
