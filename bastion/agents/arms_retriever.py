"""The retriever arm: searches the run owner's knowledge collections, only those in the grant.

``{query, collection | collections, top_k}`` in; ``{passages: [{id, text, title, uri}]}`` out. The
passages are guarded on the way out (they are about to reach a model)."""

from __future__ import annotations

from typing import Any, Protocol

from bastion.agents.arms import ArmError, ArmResult, StepInput
from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.budget import BudgetView
from bastion.agents.dispatch import TokenGate

MAX_TOP_K = 50


class Searcher(Protocol):
    """The knowledge search as the run's owner (the composition root binds the tenant)."""

    async def search(self, query: str, collections: list[str], k: int) -> list[dict[str, Any]]: ...


class RetrieverArm:
    def __init__(self, searcher: Searcher, guard: ArmGuard, gate: TokenGate) -> None:
        self.searcher = searcher
        self.guard = guard
        self.gate = gate

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult:
        data = step.data
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ArmError("query must be a non-empty string")
        raw = data.get("collections") or ([data["collection"]] if data.get("collection") else [])
        if not isinstance(raw, list) or not raw or not all(isinstance(c, str) for c in raw):
            raise ArmError("collection (or collections) must name the collections to search")
        collections = list(dict.fromkeys(raw))
        self.gate.check(token, resource="collection", values=tuple(collections))
        self.guard.inbound(query, f"step {step.step_id} query")
        top_k = data.get("top_k", 5)
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ArmError(f"top_k must be an integer from 1 to {MAX_TOP_K}")
        hits = await self.searcher.search(query, collections, top_k)
        passages = [
            {**hit, "text": self.guard.outbound(str(hit.get("text", "")), f"step {step.step_id} passage")}
            for hit in hits
        ]
        return ArmResult({"passages": passages})
