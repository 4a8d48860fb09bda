"""Rate limits (requests and tokens per minute, sliding windows) and budgets (per request, daily,
monthly), in process memory or shared through Redis; see docs/LIMITS.md."""

from bastion.limits.failover import LimiterUnavailable
from bastion.limits.plan import Ticket
from bastion.limits.service import LimitsService

__all__ = ["LimiterUnavailable", "LimitsService", "Ticket"]
