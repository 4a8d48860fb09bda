"""A self-contained HTML page of a red-team report: inline CSS, no script, no external URL; every
value from the report (answers, prompts, ids) is HTML-escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.25rem .5rem;text-align:left}
th{background:#eef}.bar{background:#c33;height:.6rem;display:inline-block}
pre{white-space:pre-wrap;background:#f6f6f9;padding:.5rem;max-width:60rem}
mark{background:#fd6}.muted{color:#667}
"""


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value * 100:.1f}%"


def _rate_table(title: str, rows: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [f"<h2>{escape(title)}</h2><table><tr><th>group</th><th>successes / trials</th>"
             "<th>rate</th><th>Wilson 95%</th><th></th></tr>"]  # fmt: skip
    for group, row in rows.items():
        width = round((row.get("rate") or 0) * 100)
        lines.append(
            f"<tr><td>{escape(str(group))}</td><td>{row['successes']} / {row['trials']}</td>"
            f"<td>{_pct(row.get('rate'))}</td><td>{_pct(row.get('low'))} &ndash; {_pct(row.get('high'))}</td>"
            f'<td><span class="bar" style="width:{width}px"></span></td></tr>'
        )
    lines.append("</table>")
    return "".join(lines)


def _highlight(answer: str, evidence: list[Mapping[str, Any]]) -> str:
    spans = sorted({(int(e["start"]), int(e["end"])) for e in evidence})
    out, cursor = [], 0
    for start, end in spans:
        if start < cursor:
            continue
        out.append(escape(answer[cursor:start]))
        out.append(f"<mark>{escape(answer[start:end])}</mark>")
        cursor = end
    out.append(escape(answer[cursor:]))
    return "".join(out)


def _points(delta: float | None) -> str:
    return "&ndash;" if delta is None else f"{float(delta) * 100:+.1f} points"


def _points_table(column: str, deltas: Mapping[str, float | None]) -> str:
    """A rate change per category, in percentage points."""
    rows = "".join(
        f"<tr><td>{escape(str(group))}</td><td>{_points(delta)}</td></tr>" for group, delta in deltas.items()
    )
    return f"<table><tr><th>category</th><th>{column}</th></tr>{rows}</table>"


def _effectiveness_section(effectiveness: Mapping[str, Any]) -> str:
    """What the guard took off the attack success rate, against the paired model-only run."""
    return (
        "<h2>Guard effectiveness</h2>"
        f"<p>Attack success rate without the guard (run {escape(str(effectiveness['model_run']))}) minus with it"
        f" (run {escape(str(effectiveness['gateway_run']))}): {_points(effectiveness['overall'])}.</p>"
        + _points_table("rate taken off", effectiveness["by_category"])
    )


def render_html(report: Mapping[str, Any]) -> str:
    run = report.get("run") or {}
    totals = report["totals"]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Red-team report {escape(str(run.get('id', '')))}</title><style>{_CSS}</style></head><body>",
        "<h1>Red-team report</h1><table>",
    ]
    meta = {**{k: v for k, v in run.items() if isinstance(v, str | int | float)}, "seed": report.get("seed")}
    parts += [f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in meta.items()]
    parts.append(
        f"<tr><th>attack success rate</th><td>{totals['successes']} / {totals['trials']} = {_pct(totals['rate'])}"
        f" (95% {_pct(totals['low'])} &ndash; {_pct(totals['high'])}); {totals['errors']} errors</td></tr></table>"
    )
    parts.append(_rate_table("By category", report["by_category"]))
    parts.append(_rate_table("By technique", report["by_technique"]))
    frag = report["fragility"]
    parts.append(f"<h2>Fragility</h2><p>Mean over attacks: {_pct(frag['overall'])} of variants flip the outcome.</p>")
    parts.append("<table><tr><th>attack</th><th>base succeeded</th><th>variants</th><th>flipped</th></tr>")
    for attack_id, row in frag["attacks"].items():
        parts.append(
            f"<tr><td>{escape(attack_id)}</td><td>{escape(str(row['base_success']))}</td><td>{row['variants']}</td>"
            f'<td>{_pct(row["score"])} <span class="muted">{escape(", ".join(row["flipped"]))}</span></td></tr>'
        )
    parts.append("</table>")
    comparison = report.get("comparison")
    if comparison:
        parts.append("<h2>Compared with the previous run</h2>")
        parts.append(_points_table("rate change", comparison["by_category_rate_delta"]))
    effectiveness = report.get("guard_effectiveness")
    if effectiveness:
        parts.append(_effectiveness_section(effectiveness))
    parts.append("<h2>Top failing attempts</h2>")
    if not report["top_failures"]:
        parts.append("<p>None: no attack succeeded.</p>")
    for attempt in report["top_failures"]:
        evidence = [e for v in attempt["verdicts"] if v["hit"] and v["judge"] != "refusal" for e in v["evidence"]]
        judges = ", ".join(f"{v['judge']} ({v['detail']})" for v in attempt["verdicts"] if v["hit"])
        parts.append(
            f'<h3>{escape(attempt["id"])}</h3><p class="muted">{escape(attempt["category"])} · '
            f"{escape(attempt['technique'])} · {escape(judges)}</p>"
            f"<p>Prompt</p><pre>{escape(attempt['prompt'])}</pre>"
            f"<p>Answer (evidence highlighted)</p><pre>{_highlight(attempt['answer'] or '', evidence)}</pre>"
        )
    parts.append("</body></html>\n")
    return "".join(parts)
