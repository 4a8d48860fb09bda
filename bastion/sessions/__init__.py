"""Agent sessions (seed 000): ``/api/v1/ai/sessions/*`` and ``/api/v1/ai/chat``. See docs/SESSIONS.md."""

from bastion.sessions.service import SessionGone, SessionLimitReached, SessionService

__all__ = ["SessionGone", "SessionLimitReached", "SessionService"]
