"""``crm-erp-sync worker`` as a child process: started, awaited until ready, stopped or killed.

Used by the benchmark and the integration tests, so both run the worker exactly as a user does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.settings import REPO_ROOT

READY_LINE = b"[^Worker]: Ready"


WORKER = ("-m", "app.cli", "worker", "--loglevel", "info")


class WorkerProcess:
    """``command``: the Python arguments of the process (default: the service's worker); any Faust
    worker that logs its ready line will do (the bench's Faust cap is one)."""

    def __init__(self, env: dict[str, str], log: Path, command: tuple[str, ...] = WORKER) -> None:
        self.env = env
        self.log = log
        self.command = command
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        start_at = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.command],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            with self.log.open("rb") as f:
                f.seek(start_at)
                if READY_LINE in f.read():
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {ready_timeout}s:\n{self.tail()}")

    def peak_rss_mb(self) -> float | None:
        """The worker's peak resident memory (VmHWM), while it runs."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
