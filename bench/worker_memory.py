"""What one gateway worker costs in memory: VmRSS / VmHWM of ``bastion serve --workers 1`` serving a
remote-only configuration under load, and whether llama.cpp or torch got mapped into it.

Topology is that of ``run_gateway_bench.sh``: the nginx mock (``mock_upstream.nginx.conf``) is the
upstream, wrk (``wrk_openai.lua``) puts load on the gateway, chat and then streaming. Figures are read
from ``/proc/<worker>/status`` (VmRSS: resident now; VmHWM: the peak) and ``/proc/<worker>/maps``.

    python bench/worker_memory.py                 # remote-only config
    python bench/worker_memory.py --local         # the same, with both embedded models listed too
    python bench/worker_memory.py --local chat    # ... with only local/smollm2 (llama.cpp, no torch)

With ``--local`` the config also lists ``local/smollm2`` and/or ``local/minilm`` as deployments, so
they load at start-up; one call through each is made before the load, so the figures include the
models in use. A benchmark, not a test: it prints figures and exits non-zero
only if the harness breaks (the mock or the gateway does not start, wrk reports failed requests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: Libraries whose presence in the worker's address space means the local models were loaded.
HEAVY_LIBRARIES = ("libllama", "libggml", "libtorch")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def program(process: subprocess.Popen[bytes]) -> str:
    """The program ``process`` runs (its command's first word)."""
    command = process.args
    return os.fsdecode(command if isinstance(command, str | bytes | os.PathLike) else command[0])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{program(process)} exited with {process.returncode} before {url} answered")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout_s} s")


def post(url: str, body: dict[str, object], timeout_s: float = 300.0) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def gateway_config(mock: str, data_dir: Path, local: str) -> str:
    models = [
        {"name": name, "deployments": [{"provider": "openai", "model": "m", "api_base": f"{mock}{path}"}]}
        for name, path in (("bench-model", "/v1"), ("bench-stream", "/stream/v1"))
    ]
    if local in ("chat", "both"):
        models.append({"name": "local/smollm2", "deployments": [{"provider": "local", "model": "smollm2"}]})
    if local in ("embeddings", "both"):
        models.append(
            {"name": "local/minilm", "kind": "embedding", "deployments": [{"provider": "local", "model": "minilm"}]}
        )
    # Limits, budgets and the ledger stay at their defaults: a worker does that work on every call.
    config = {
        "models": models,
        "auth": {"enabled": False},
        "logging": {"level": "warning"},
        "data_dir": str(data_dir),
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def worker_pid(pid: int) -> int:
    """With one worker uvicorn serves in the process itself; with a supervisor, its first child."""
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return pid


def memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon (the worker's own) and RssFile (mapped files: libraries, model
    weights; shared with other processes using the same files), in MB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            figures[name] = int(value.split()[0]) // 1024
    return figures


def mapped_libraries(pid: int) -> list[str]:
    names = {Path(line.split()[-1]).name for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line}
    return sorted(name for name in names if name.startswith(HEAVY_LIBRARIES))


def run_wrk(url: str, mode: str, seconds: int, connections: int) -> str:
    path = "/v1/chat/completions"
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_PATH": path}
    script = str(BENCH_DIR / "wrk_openai.lua")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script, url]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = next((line for line in output.splitlines() if line.startswith("BENCHRESULT")), "")
    fields = dict(item.split("=", 1) for item in result.split()[1:])
    if not fields or fields["non2xx"] != "0" or fields["badbody"] != "0" or fields["timeout"] != "0":
        raise SystemExit(f"wrk {mode}: failed requests\n{output}")
    return f"{mode}: {fields['requests']} requests, {float(fields['rps']):.0f} req/s"


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--local",
        nargs="?",
        const="both",
        default="none",
        choices=("none", "chat", "embeddings", "both"),
        help="also list embedded models as deployments (default with the flag: both)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per mode (chat, stream)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bastion", default=str(Path(sys.executable).with_name("bastion")), help="bastion command")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install nginx-light wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="bastion-memory-"))
    tmp.chmod(0o755)  # nginx's worker runs as nobody when started as root
    mock_port, gateway_port = free_port(), free_port()
    template = (BENCH_DIR / "mock_upstream.nginx.conf").read_text()
    (tmp / "nginx.conf").write_text(template.replace("@PORT@", str(mock_port)).replace("@TMP@", str(tmp)))
    (tmp / "bastion.yaml").write_text(gateway_config(f"http://127.0.0.1:{mock_port}", tmp / "data", args.local))
    mock = gateway = None
    try:
        nginx = ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"]
        mock = subprocess.Popen(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_http(f"http://127.0.0.1:{mock_port}/healthz", mock, 30)
        serve = [args.bastion, "serve", "--config", str(tmp / "bastion.yaml"), "--port", str(gateway_port)]
        serve += ["--workers", "1"]
        with (tmp / "bastion.log").open("wb") as log:
            gateway = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
        url = f"http://127.0.0.1:{gateway_port}"
        wait_http(f"{url}/healthz", gateway, 120)
        pid = worker_pid(gateway.pid)
        if args.local in ("embeddings", "both"):
            post(f"{url}/v1/embeddings", {"model": "local/minilm", "input": "warm up"})
        if args.local in ("chat", "both"):
            chat = {"model": "local/smollm2", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
            post(f"{url}/v1/chat/completions", chat)
        idle = memory(pid)
        runs = [run_wrk(url, mode, args.duration, args.connections) for mode in ("chat", "stream")]
        loaded = memory(pid)
        libraries = mapped_libraries(pid)
    finally:
        stop(gateway)
        stop(mock)
    config = {"none": "remote-only", "chat": "remote + local/smollm2", "embeddings": "remote + local/minilm"}.get(
        args.local, "remote + local/smollm2 + local/minilm"
    )
    print(f"config: {config}; worker pid {pid}; load: {'; '.join(runs)} ({args.connections} connections)")
    print(f"VmRSS after start-up: {idle['VmRSS']} MB")
    split = f"RssAnon {loaded['RssAnon']} MB, RssFile {loaded['RssFile']} MB"
    print(f"VmRSS after load:     {loaded['VmRSS']} MB ({split})")
    print(f"VmHWM (peak):         {loaded['VmHWM']} MB")
    print(f"llama.cpp / torch mapped: {', '.join(libraries) or 'none'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
