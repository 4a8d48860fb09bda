"""Rate limits (requests and tokens per minute, sliding windows) and budgets (per request, daily,
monthly), in process memory or shared through Redis; see docs/LIMITS.md."""

from bastion.limits.failover import LimiterUnavailable
from bastion.limits.service import LimitsService, limits_service

__all__ = ["LimiterUnavailable", "LimitsService", "limits_service"]
