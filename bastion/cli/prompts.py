"""``bastion prompts create|version|list|label|clone|archive|show|analyze``: the vault from the shell.

Prompt text is read from a file or standard input (``-``), never only from argv, where it would
land in shell history and ``ps`` output. ``show`` prints metadata; ``show --plaintext`` prints the
text and is audited like the admin API's plaintext route. ``analyze`` runs the prompt analyzer
on a file or a vault prompt (docs/ANALYZER.md).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from sqlalchemy import select

from bastion.cli.options import ConfigOption, DataDirOption
from bastion.cli.vault import load, run
from bastion.errors import InvalidRequest, NotFound
from bastion.store.db import Database
from bastion.store.models import Tenant
from bastion.vault.model import VersionSpec
from bastion.vault.service import VaultService

app = typer.Typer(help="Prompt vault: versioned, encrypted prompts.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
SystemFile = Annotated[
    str, typer.Option("--system-file", "-s", help="File holding the system prompt, or - for standard input.")
]
TemplateFile = Annotated[
    str | None, typer.Option("--template-file", help="File holding the user template (Jinja2), or -.")
]
ModelOption = Annotated[str | None, typer.Option(help="Model the prompt prefers.")]
ParamOption = Annotated[list[str] | None, typer.Option("--param", "-p", help="Default parameter, name=value.")]
MetadataOption = Annotated[str | None, typer.Option(help="Metadata as a JSON object (not secret).")]
LabelOption = Annotated[list[str] | None, typer.Option("--label", "-l", help="Label to point at this version.")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read {source}: {exc}") from None


def _spec(
    system_file: str, template_file: str | None, model: str | None, params: list[str] | None, metadata: str | None
) -> VersionSpec:
    if system_file == "-" and template_file == "-":
        raise InvalidRequest("only one of --system-file and --template-file can read standard input")
    parsed: dict[str, Any] = {}
    for item in params or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidRequest(f"--param must be name=value (got {item[:40]!r})")
        parsed[name] = yaml.safe_load(value)  # numbers and lists read as such: temperature=0.2
    try:
        meta = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError:
        raise InvalidRequest("--metadata must be a JSON object") from None
    return VersionSpec(
        _read_text(system_file),
        _read_text(template_file) if template_file else None,
        model,
        parsed,
        meta,
    )


async def _tenant_id(db: Database, name: str, *, create: bool = False) -> str:
    async with db.transaction() as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.name == name))
        if tenant_id is None:
            if not create:
                raise NotFound(f"no tenant named {name!r}")
            tenant = Tenant(name=name)
            session.add(tenant)
            await session.flush()
            tenant_id = tenant.id
        return str(tenant_id)


def _vault(db: Database, settings: Any) -> VaultService:
    return VaultService(db, settings)


def _print(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


@app.command()
def create(
    prompt_id: str,
    tenant: TenantOption,
    system_file: SystemFile,
    template_file: TemplateFile = None,
    model: ModelOption = None,
    param: ParamOption = None,
    metadata: MetadataOption = None,
    label: LabelOption = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    description: Annotated[str | None, typer.Option(help="What the prompt is for.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a prompt: version 1, labelled production (and --label ...)."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        spec = _spec(system_file, template_file, model, param, metadata)
        tenant_id = await _tenant_id(db, tenant, create=True)
        info = await _vault(db, settings).create_prompt(
            tenant_id, prompt_id, spec, actor=_actor(), name=name, description=description, labels=label or []
        )
        return info.to_json()

    _print(run(settings, work))


@app.command()
def version(
    prompt_id: str,
    tenant: TenantOption,
    system_file: SystemFile,
    template_file: TemplateFile = None,
    model: ModelOption = None,
    param: ParamOption = None,
    metadata: MetadataOption = None,
    label: LabelOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a new immutable version (labels given with --label move to it)."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        spec = _spec(system_file, template_file, model, param, metadata)
        tenant_id = await _tenant_id(db, tenant)
        info = await _vault(db, settings).new_version(tenant_id, prompt_id, spec, actor=_actor(), labels=label or [])
        return info.to_json()

    _print(run(settings, work))


@app.command("list")
def list_prompts(
    tenant: TenantOption,
    all_: Annotated[bool, typer.Option("--all", help="Include archived prompts.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List prompts (metadata only)."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        tenant_id = await _tenant_id(db, tenant)
        return [p.to_json() for p in await _vault(db, settings).list_prompts(tenant_id, include_archived=all_)]

    for item in run(settings, work):
        labels = ", ".join(f"{k}={v}" for k, v in sorted(item["labels"].items()))
        state = " (archived)" if item["archived"] else ""
        typer.echo(f"{item['prompt_id']}{state}  v{item['latest_version']}  [{labels}]  {item['name']}")


@app.command()
def label(
    prompt_id: str,
    label_name: Annotated[str, typer.Argument(metavar="LABEL")],
    version_number: Annotated[int, typer.Argument(metavar="VERSION")],
    tenant: TenantOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Point LABEL at VERSION."""
    settings = load(config, data_dir)

    async def work(db: Database) -> int | None:
        tenant_id = await _tenant_id(db, tenant)
        return await _vault(db, settings).move_label(tenant_id, prompt_id, label_name, version_number, actor=_actor())

    before = run(settings, work)
    typer.echo(f"{prompt_id}: {label_name} -> {version_number} (was {before if before is not None else 'unset'})")


@app.command()
def clone(
    prompt_id: str,
    new_prompt_id: str,
    tenant: TenantOption,
    name: Annotated[str | None, typer.Option(help="Display name of the copy.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Copy a prompt, every version re-encrypted, to a new id."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        tenant_id = await _tenant_id(db, tenant)
        return (
            await _vault(db, settings).clone(tenant_id, prompt_id, new_prompt_id, actor=_actor(), name=name)
        ).to_json()

    _print(run(settings, work))


@app.command()
def archive(prompt_id: str, tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Archive a prompt: clients get 404 for it from now on."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        tenant_id = await _tenant_id(db, tenant)
        return (await _vault(db, settings).archive(tenant_id, prompt_id, actor=_actor())).to_json()

    _print(run(settings, work))


@app.command()
def show(
    prompt_id: str,
    tenant: TenantOption,
    plaintext: Annotated[bool, typer.Option(help="Print the prompt text (audited).")] = False,
    version_number: Annotated[
        int | None, typer.Option("--version", "-v", help="Version for --plaintext (default: production).")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A prompt's metadata and versions; with --plaintext, one version's text."""
    settings = load(config, data_dir)

    async def work(db: Database) -> Any:
        tenant_id = await _tenant_id(db, tenant)
        vault = _vault(db, settings)
        info = await vault.get_prompt(tenant_id, prompt_id)
        if plaintext:
            number = version_number or info.labels.get("production") or info.latest_version
            return await vault.read_plaintext(tenant_id, prompt_id, number, actor=_actor())
        return {**info.to_json(), "versions": [v.to_json() for v in await vault.list_versions(tenant_id, prompt_id)]}

    _print(run(settings, work))


def _render_analysis(result: dict[str, Any]) -> str:
    """An analysis as text for the terminal."""
    tokens = result["tokens"]
    how = "exact" if tokens["exact"] else f"estimate, ±{tokens['bound']:.0%}: {tokens['low']}-{tokens['high']}"
    head = f"{result['prompt_id']} v{result['version']}: " if result.get("prompt_id") else ""
    lines = [
        f"{head}{tokens['total']} tokens ({how}; {tokens['tokenizer']}); pattern library {result['library_version']}",
        "structure: "
        + ", ".join(f"{name} {'yes' if element['present'] else 'no'}" for name, element in result["structure"].items()),
    ]
    for finding in result["findings"]:
        spans = ", ".join(f"{s['part']} {s['start']}-{s['end']}" for s in finding["spans"][:5])
        delta = f"{finding['token_delta']:+d} tokens" if finding["token_delta"] else "no token change"
        lines.append(f"\n[{finding['confidence']:.2f}] {finding['pattern_id']}: {finding['title']} ({delta})")
        if finding["detail"] or spans:
            lines.append(f"  where: {spans or '-'}" + (f" ({finding['detail']})" if finding["detail"] else ""))
        lines.append(f"  why:   {finding['rationale']}")
        lines.append(f"  fix:   {finding['suggestion']}")
        for span in finding["spans"][:3]:
            if "excerpt" in span:
                lines.append("  > " + span["excerpt"].replace("\n", " "))
    summary = result["summary"]
    lines.append(f"\n{summary['findings']} finding(s); estimated token delta {summary['token_delta']:+d}")
    return "\n".join(lines)


@app.command()
def analyze(
    file: Annotated[
        str | None, typer.Argument(help="File holding the system prompt (or - for standard input).")
    ] = None,
    template_file: TemplateFile = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Analyse this vault prompt instead of a file.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant of --prompt.")] = None,
    version_number: Annotated[int | None, typer.Option("--version", "-v", help="Version of --prompt.")] = None,
    label_name: Annotated[
        str | None, typer.Option("--label", "-l", help="Label of --prompt (default production).")
    ] = None,
    variable: Annotated[
        list[str] | None, typer.Option("--variable", "-V", help="A variable name the application sends.")
    ] = None,
    model: ModelOption = None,
    excerpts: Annotated[bool, typer.Option(help="With --prompt: show excerpts of the text (audited).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Analyse a prompt: structure, clarity, token efficiency, cache-friendliness, template hygiene."""
    from bastion.analyzer.engine import default_analyzer
    from bastion.analyzer.model import PromptText
    from bastion.analyzer.service import AnalyzerService

    declared = tuple(variable) if variable else None
    if (file is None) == (prompt is None):
        raise typer.BadParameter("give either FILE or --prompt ID")
    if file is not None:
        if file == "-" and template_file == "-":
            raise typer.BadParameter("only one of FILE and --template-file can read standard input")
        try:
            text = PromptText(_read_text(file), _read_text(template_file) if template_file else None, declared, model)
        except InvalidRequest as exc:
            typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        result = default_analyzer().analyze(text).to_json(text)
    else:
        if tenant is None:
            raise typer.BadParameter("--prompt needs --tenant")
        settings = load(config, data_dir)
        prompt_id = prompt or ""

        async def work(db: Database) -> Any:
            tenant_id = await _tenant_id(db, tenant)
            service = AnalyzerService(_vault(db, settings))
            found = await service.analyze_vault_prompt(
                tenant_id,
                prompt_id,
                version=version_number,
                label=label_name,
                declared=declared,
                model=model,
                reader=_actor() if excerpts else None,
            )
            return found.to_json()

        result = run(settings, work)
    if as_json:
        _print(result)
    else:
        typer.echo(_render_analysis(result))
