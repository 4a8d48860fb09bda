"""``bastion experiments``: analyse summary statistics, size an experiment.

bastion experiments analyze results.json
bastion experiments sample-size --baseline 0.10 --mde 0.02
bastion experiments sample-size --baseline 0.10 --mde 0.2 --relative --method continuity
bastion experiments sample-size --baseline 1.8 --mde 0.1 --sd 0.9 --sequential

Both print JSON. The statistics are ``bastion.stats``; docs/EXPERIMENTS.md explains every number.
``bastion.stats`` (and scipy with it) is imported when a command runs, so every other ``bastion``
command starts as fast as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bastion.stats.power import SampleSize

app = typer.Typer(help="Experiments: analyse results, size a test.", no_args_is_help=True)

#: Exit status for input the command cannot use (as for any other usage error).
_BAD_INPUT = 2
#: The same names as ``bastion.stats.power.PROPORTION_METHODS`` (a test keeps them equal).
METHODS = ("pooled", "unpooled", "arcsine", "continuity")
DEFAULT_TUNING = 5000.0


@app.callback()
def _experiments() -> None:
    """Experiments: analyse results, size a test."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(_BAD_INPUT)


def _print(payload: dict[str, Any]) -> None:
    try:
        text = json.dumps(payload, indent=2, allow_nan=False)
    except ValueError:  # a NaN or infinity would make the output invalid JSON
        raise _fail("the statistics are not finite for this input (check n, sum and sum_squares)") from None
    typer.echo(text)


@app.command("analyze")
def analyze_command(
    file: Annotated[Path, typer.Argument(help="JSON with metric, method, alpha, relative and arms (control first).")],
) -> None:
    """Analyse an experiment from per-arm summary statistics (n, sum, sum_squares); print JSON."""
    from bastion.stats.analyze import analyze
    from bastion.stats.errors import StatsError

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail(f"cannot read {file}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        result = analyze(data)
    except StatsError as exc:
        raise _fail(f"{file}: {exc}") from None
    _print(result)


def _sample_size(
    baseline: float,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    method: str,
    sd: float | None,
    sequential: bool,
    tuning: float,
) -> SampleSize:
    from bastion.stats.errors import StatsError
    from bastion.stats.power import (
        PROPORTION_METHODS,
        mean_sample_size,
        proportion_sample_size,
        sequential_sample_size,
    )

    if sequential:
        return sequential_sample_size(baseline, mde, sd=sd, relative=relative, alpha=alpha, power=power, tuning=tuning)
    if sd is not None:
        return mean_sample_size(baseline, mde, sd, relative=relative, alpha=alpha, power=power)
    if method not in PROPORTION_METHODS:
        raise StatsError(f"--method must be one of {', '.join(PROPORTION_METHODS)} (got {method!r})")
    return proportion_sample_size(baseline, mde, relative=relative, alpha=alpha, power=power, method=method)


@app.command("sample-size")
def sample_size_command(
    baseline: Annotated[float, typer.Option(help="Control's conversion rate (or mean, with --sd).")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect: absolute, or a fraction with --relative.")],
    relative: Annotated[
        bool, typer.Option("--relative", help="--mde is relative to the baseline (0.2 = +20%).")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Probability of detecting the effect when it is real.")] = 0.8,
    method: Annotated[str, typer.Option(help=f"Two-proportion formula: {', '.join(METHODS)}.")] = "pooled",
    sd: Annotated[
        float | None, typer.Option(help="Standard deviation of a continuous metric (exact noncentral t).")
    ] = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Size for the sequential (always-valid) test instead.")
    ] = False,
    tuning: Annotated[float, typer.Option(help="Sequential tuning parameter (total units).")] = DEFAULT_TUNING,
) -> None:
    """Units needed per arm for a two-arm test; print JSON with the method used."""
    from bastion.stats.errors import StatsError

    try:
        size = _sample_size(baseline, mde, relative, alpha, power, method, sd, sequential, tuning)
    except StatsError as exc:
        raise _fail(str(exc)) from None
    _print(
        {
            "per_arm": size.per_arm,
            "total": 2 * size.per_arm,
            "method": size.method,
            "baseline": round(size.baseline, 12),
            "treatment": round(size.treatment, 12),
            "alpha": size.alpha,
            "power": size.power,
        }
    )
