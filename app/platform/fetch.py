"""Fetch the platform's jars once from Maven Central with ``mvn`` into the git-ignored cache."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from app.platform.errors import PlatformError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


def _mvn(pom: Path, out: Path, *flags: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PlatformError("Maven (mvn) is not on PATH; it fetches the broker and registry from Maven Central")
    cmd = [mvn, "-q", "-B", "-f", str(pom), DEPENDENCY_PLUGIN, f"-DoutputDirectory={out}", *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PlatformError(f"mvn failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")


def kafka_libs(cache: Path, pom: Path) -> Path:
    """The folder of broker jars (kafka_2.13 runtime closure plus the slf4j→log4j2 bridge)."""
    libs = cache / "kafka-libs"
    if not (libs / ".complete").exists():
        tmp = cache / "kafka-libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        _mvn(pom, tmp, "-DincludeScope=runtime", "-DincludeTypes=jar")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        (libs / ".complete").touch()
    return libs


def registry_home(cache: Path, pom: Path) -> Path:
    """The unpacked Apicurio Registry Quarkus distribution (``quarkus-run.jar`` at its top)."""
    home = cache / "apicurio"
    if not (home / "quarkus-run.jar").exists():
        dist = cache / "registry-dist"
        _mvn(pom, dist, "-DincludeTypes=tar.gz")
        archives = sorted(dist.glob("apicurio-registry-app-*-all.tar.gz"))
        if not archives:
            raise PlatformError(f"no Apicurio archive in {dist} after mvn")
        tmp = cache / "apicurio.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archives[-1]) as tar:
            tar.extractall(tmp, filter="tar")
        shutil.rmtree(home, ignore_errors=True)
        tmp.rename(home)
        archives[-1].unlink()
    return home
