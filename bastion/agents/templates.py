"""The shipped plan templates (``bastion/agents/templates/*.yaml``) and loading a template file."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from bastion.agents.plan import Plan, PlanError, parse_plan


@cache
def shipped_templates() -> dict[str, Plan]:
    """The templates that come with Bastion, by name (validated once per process)."""
    plans: dict[str, Plan] = {}
    folder = resources.files("bastion.agents") / "templates"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            plan = parse_plan(entry.read_text(encoding="utf-8"), f"templates/{entry.name}")
            plans[plan.name] = plan
    return plans


def get_template(name: str) -> Plan:
    plans = shipped_templates()
    if name not in plans:
        raise PlanError(f"no template named {name!r} (available: {', '.join(sorted(plans))})")
    return plans[name]


def load_template(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the template: {exc.strerror}") from None
    return parse_plan(text, str(path))
