"""Client feedback on an interaction (the ledger's request id): thumbs up or down, or a number.

The interaction must be the caller's tenant's (another tenant's, or one not recorded yet, is a
404). Feedback feeds the experiments' ``feedback`` metric: thumbs count as 1 and 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import select

from bastion.errors import InvalidRequest, NotFound
from bastion.experiments.models import Feedback
from bastion.store.db import Database
from bastion.store.models import Interaction, new_id, utcnow

FIELDS: Final = frozenset({"interaction_id", "thumbs", "score", "comment"})
THUMBS: Final = {"up": 1.0, "down": 0.0}
MAX_COMMENT: Final = 4000
#: Numeric scores are free-form within this range (a 1-5 rating, a 0-1 grade, ...).
SCORE_RANGE: Final = (-1e6, 1e6)


def parse_feedback(body: Any) -> tuple[str, float, str, str | None]:
    """(interaction id, score, kind, comment) from a request body; 400 on anything else."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("The body must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field {unknown[0][:40]!r}; allowed: {', '.join(sorted(FIELDS))}.", param=unknown[0][:40]
        )
    interaction_id = body.get("interaction_id")
    if not isinstance(interaction_id, str) or not 0 < len(interaction_id) <= 64:
        raise InvalidRequest("interaction_id must be the request id of an interaction.", param="interaction_id")
    thumbs, score = body.get("thumbs"), body.get("score")
    if (thumbs is None) == (score is None):
        raise InvalidRequest('Send either thumbs ("up" or "down") or a numeric score.', param="score")
    if thumbs is not None:
        if not isinstance(thumbs, str) or thumbs not in THUMBS:
            raise InvalidRequest('thumbs must be "up" or "down".', param="thumbs")
        value, kind = THUMBS[thumbs], "thumbs"
    else:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise InvalidRequest("score must be a number.", param="score")
        if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
            raise InvalidRequest("score is out of range (|score| <= 1e6).", param="score")
        value, kind = float(score), "score"
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise InvalidRequest(f"comment must be a string of at most {MAX_COMMENT} characters.", param="comment")
    return interaction_id, value, kind, comment


async def add_feedback(db: Database, tenant_id: str, actor: str, body: Any) -> dict[str, Any]:
    """Store the feedback; 404 when the interaction is not the tenant's (or not recorded yet)."""
    interaction_id, score, kind, comment = parse_feedback(body)
    async with db.transaction() as session:
        found = await session.scalar(
            select(Interaction.id).where(Interaction.id == interaction_id, Interaction.tenant_id == tenant_id)
        )
        if found is None:
            raise NotFound(
                f"No interaction {interaction_id!r} (the ledger records one within seconds of its answer).",
                param="interaction_id",
            )
        row = Feedback(
            id=new_id(),
            tenant_id=tenant_id,
            interaction_id=interaction_id,
            score=score,
            kind=kind,
            comment=comment,
            actor=actor[:128],
            created_at=utcnow(),
        )
        session.add(row)
    return {
        "id": row.id,
        "object": "feedback",
        "interaction_id": interaction_id,
        "kind": kind,
        "score": score,
        "comment": comment,
        "created_at": row.created_at.isoformat(),
    }
