"""What a ``/v1/files`` upload costs: time and the worker's memory for a near-limit upload through a
real ``bastion serve`` (auth off, default 200 MB limit), as ``user_data`` (stored as it streams)
and as a 50,000-request ``batch`` file (stored, then checked line by line), then its download.

    python bench/files_bench.py [--mb 190]

Memory is the worker's VmHWM (peak resident set) from ``/proc``, before and after. A benchmark,
not a test: it prints figures and exits non-zero only if an upload fails.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

BASTION = Path(sys.executable).with_name("bastion")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def batch_file(path: Path, requests: int, size: int) -> None:
    """``requests`` lines of about ``size`` bytes in all."""
    filler = "x" * max(1, size // requests - 150)
    with path.open("wb") as out:
        for i in range(requests):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": filler}]}
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            out.write(orjson.dumps(line) + b"\n")


def upload(url: str, path: Path, purpose: str) -> tuple[float, dict[str, object]]:
    boundary = "benchb0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk
        yield tail

    started = time.perf_counter()
    answer = httpx.post(
        url + "/v1/files",
        content=body(),
        headers={
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + path.stat().st_size + len(tail)),
        },
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"upload failed: {answer.status_code} {answer.text[:300]}")
    return elapsed, answer.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=190, help="upload size in MB (default 190)")
    args = parser.parse_args()
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bastion.yaml").write_text(
            "auth: {enabled: false}\nlimits: {enabled: false}\nbudgets: {enabled: false}\n"
            "local: {enabled: false, embeddings_enabled: false}\nmodels: []\nserver: {body_timeout_s: 300}\n"
            f"data_dir: {work / 'data'}\nlogging: {{level: warning}}\n"
        )
        plain = work / "plain.bin"
        with plain.open("wb") as out:
            for _ in range(size // (1 << 20)):
                out.write(os.urandom(1 << 20))
        batch = work / "batch.jsonl"
        batch_file(batch, 50_000, size)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        process = subprocess.Popen(
            [str(BASTION), "serve", "--config", str(work / "bastion.yaml"), "--port", str(port), "--workers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            print(f"worker peak RSS at start: {peak_rss_mb(process.pid):.0f} MB")
            for path, purpose in ((plain, "user_data"), (batch, "batch")):
                elapsed, created = upload(url, path, purpose)
                mb = path.stat().st_size / 1e6
                print(
                    f"{purpose:9} {mb:6.1f} MB: {elapsed:5.2f} s ({mb / elapsed:6.1f} MB/s); "
                    f"worker peak RSS {peak_rss_mb(process.pid):.0f} MB"
                )
                started = time.perf_counter()
                with httpx.stream("GET", f"{url}/v1/files/{created['id']}/content", timeout=300) as download:
                    received = sum(len(chunk) for chunk in download.iter_bytes())
                elapsed = time.perf_counter() - started
                print(f"{'':9} download: {elapsed:5.2f} s ({received / 1e6 / elapsed:6.1f} MB/s)")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
