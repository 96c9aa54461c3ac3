"""Find a JVM of a minimum major version (the registry needs 21+, the broker 17+)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from app.platform.errors import PlatformError

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def major_version(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java(minimum: int, preferred: str | None = None) -> str:
    """``preferred`` if given, else ``$JAVA_HOME``, ``java`` on PATH, then JDKs under /usr/lib/jvm."""
    candidates: list[str] = []
    if preferred:
        candidates.append(preferred)
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    if shutil.which("java"):
        candidates.append(shutil.which("java") or "java")
    candidates += [str(p) for p in sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)]
    for java in candidates:
        if (major_version(java) or 0) >= minimum:
            return java
    if preferred:
        raise PlatformError(f"{preferred} is not a Java {minimum}+ runtime")
    raise PlatformError(f"no Java {minimum}+ found (tried {', '.join(candidates) or 'nothing'})")
