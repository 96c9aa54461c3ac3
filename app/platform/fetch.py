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


def jars(folder: Path, pom: Path, *flags: str) -> Path:
    """``folder`` filled once with the runtime jar closure of ``pom`` (a partial download never counts)."""
    if not (folder / ".complete").exists():
        tmp = folder.with_name(f"{folder.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _mvn(pom, tmp, "-DincludeScope=runtime", "-DincludeTypes=jar", *flags)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        (folder / ".complete").touch()
    return folder


def kafka_libs(cache: Path, pom: Path) -> Path:
    """The folder of broker jars (kafka_2.13 runtime closure plus the slf4j→log4j2 bridge)."""
    return jars(cache / "kafka-libs", pom)


def connect_plugin(plugins: Path, name: str, pom: Path) -> Path:
    """One Kafka Connect plugin folder under ``plugins``, without the Kafka and slf4j jars the worker
    provides (a second connect-api in a plugin folder breaks plugin isolation)."""
    return jars(plugins / name, pom, "-DexcludeGroupIds=org.apache.kafka,org.slf4j")


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
