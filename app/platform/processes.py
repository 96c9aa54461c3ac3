"""Start and stop the platform's JVMs, tracked by pid files so ``down`` stops exactly what ``up`` started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.platform.errors import PlatformError


def port_open(port: int) -> bool:
    """True when something listens on ``port`` on the loopback interface."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_answers(what: str, probe: Callable[[], bool], proc: Tracked, seconds: float, log: Path) -> None:
    """Poll ``probe`` until it answers; a start-up crash or a timeout is an error quoting ``log``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return
        if proc.exited_early():
            raise PlatformError(f"{what} exited during start-up; last lines of {log}:\n{_tail(log)}")
        time.sleep(0.5)
    raise PlatformError(f"{what} did not answer within {seconds:.0f}s; see {log}:\n{_tail(log)}")


@dataclass(frozen=True)
class Tracked:
    """A process we started: its pid file and a marker that must appear in its command line."""

    name: str
    pid_file: Path
    marker: str
    stop_signal: signal.Signals = signal.SIGTERM  # PostgreSQL: SIGINT (SIGTERM waits for every client to leave)

    def _recorded(self) -> int | None:
        try:
            return int(json.loads(self.pid_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def _running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    @classmethod
    def recorded(cls, name: str, pid_file: Path) -> Tracked:
        """The process a pid file names, its marker the last argument it was started with (a JVM's
        properties file): how ``down`` finds what an ``up`` with other settings started."""
        try:
            marker = str(json.loads(pid_file.read_text())["cmd"][-1])
        except (OSError, ValueError, KeyError, IndexError):
            marker = "\0"  # matches no command line: the file is stale
        return cls(name, pid_file, marker)

    def pid(self) -> int | None:
        """The pid if the recorded process is still ours and alive (a reused pid is not ours)."""
        pid = self._recorded()
        if pid is None or not self._running(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if self.marker in cmdline else None

    def start(self, cmd: list[str], log: Path, cwd: Path, user: str | None = None) -> int:
        """Start ``cmd`` in its own session; as ``user`` when given (PostgreSQL refuses to run as root)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "cmd": cmd, "started": time.time()}))
        return proc.pid

    def exited_early(self) -> bool:
        """True when the process we just started is gone (checked without the marker: right after
        the fork the command line is still Python's)."""
        pid = self._recorded()
        return pid is not None and not self._running(pid)

    def stop(self, grace_s: float = 30.0) -> bool:
        """``stop_signal``, then SIGKILL after ``grace_s``; True if a process of ours was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, self.stop_signal)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True
