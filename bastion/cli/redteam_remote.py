"""``bastion redteam run --url URL``: a run on a running gateway over HTTP, with the API key in
``BASTION_API_KEY``: start it (``POST /v1/redteam/runs``), follow its progress on the run's
server-sent events (a line on stderr per event), then fetch the run and both reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import typer

#: Model-only runs are the admin's; a long run only ends the stream when it ends.
_TIMEOUT = httpx.Timeout(30.0, read=None)


class RemoteError(Exception):
    """The gateway refused or could not be reached: the message says why."""


@dataclass(frozen=True, slots=True)
class RemoteResult:
    run: dict[str, Any]
    report: dict[str, Any] | None
    html: str | None


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise RemoteError(f"{response.request.method} {response.request.url.path}: {response.status_code}: {message}")
    return response


def _follow(client: httpx.Client, run_id: str) -> None:
    """Until the stream's ``done`` event (or its end), each progress event as a line on stderr."""
    event = ""
    with client.stream("GET", f"/v1/redteam/runs/{run_id}/events") as response:
        if response.status_code >= 400:
            response.read()
            _checked(response)
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "progress":
                data = json.loads(line[6:])
                typer.echo(f"progress {data['done']}/{data['total']}", err=True)
            elif line.startswith("data: ") and event == "done":
                return


def run_remote(url: str, api_key: str, body: dict[str, Any]) -> RemoteResult:
    headers = {"authorization": f"Bearer {api_key}", "user-agent": "bastion-cli"}
    try:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=_TIMEOUT) as client:
            started = _checked(client.post("/v1/redteam/runs", json=body)).json()
            _follow(client, started["id"])
            run = _checked(client.get(f"/v1/redteam/runs/{started['id']}")).json()
            if run["status"] != "succeeded":
                return RemoteResult(run, None, None)
            report = _checked(client.get(f"/v1/redteam/runs/{run['id']}/report")).json()
            html = _checked(client.get(f"/v1/redteam/runs/{run['id']}/report.html")).text
            return RemoteResult(run, report, html)
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach {url}: {exc}") from None
