"""The experiments statistics engine: pure functions over summary statistics (numpy and scipy only).

Every analysis starts from per-arm sufficient statistics (``ArmStats``: n, mean, variance), so the
same code serves the ledger's aggregates, a JSON file and the tests. Nothing here imports the rest
of Bastion; the formulas follow GrowthBook's open statistics engine (gbstats) where it defines them,
so our numbers agree with theirs (docs/EXPERIMENTS.md).
"""

from __future__ import annotations

from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats

__all__ = ["ArmStats", "StatsError"]
