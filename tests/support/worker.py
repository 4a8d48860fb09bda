"""``bastion worker`` as a subprocess, for tests of what must survive a worker's death (the job
crash tests): start it on a configuration, kill it with SIGKILL, stop it with SIGTERM.

    worker = WorkerProcess(config_path, tmp_path / "worker.log", env={"BASTION_DATA_DIR": ...})
    ... worker.kill() ... worker.stop() ... worker.tail()

Job kinds of the tests' own come from ``jobs.handler_modules`` in the configuration; the worker
imports them from this repository (its root is put on ``PYTHONPATH``). A test using it is marked
``pytest.mark.integration``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.gateway import BASTION_BIN

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None, concurrency: int = 2) -> None:
        self.log = log
        clean = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        clean.update(env or {})
        clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
        clean["PYTHONUNBUFFERED"] = "1"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(BASTION_BIN), "worker", "--config", str(config), "--concurrency", str(concurrency)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean,
                cwd=config.parent,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (jobs under way go back to the queue), then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.log}\n" + "\n".join(text.splitlines()[-lines:])
