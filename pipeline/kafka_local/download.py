"""Fetch Apache Kafka's broker jars from Maven Central with the machine's ``mvn`` (first run only).

Layout under ``cache_dir``::

    <version>/pom.xml     the throwaway POM (kept for inspection)
    <version>/lib/*.jar   the broker classpath
    <version>/.complete   written last: without it the download is redone
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .config import DEFAULT_VERSION, major_version, render_pom
from .errors import KafkaSetupError

MARKER = ".complete"


def default_cache_dir() -> Path:
    env = os.environ.get("ERRORSTREAM_KAFKA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "errorstream" / "kafka"


def require_tool(name: str, what: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(f"`{name}` ({what}) not found on PATH; {hint}")
    return path


def require_java() -> str:
    return require_tool(
        "java", "a Java 17+ runtime", "install one, e.g. apt-get install openjdk-17-jre-headless"
    )


def require_mvn() -> str:
    return require_tool("mvn", "Apache Maven", "install it, e.g. apt-get install maven")


def lib_dir(version: str, cache_dir: Path) -> Path:
    return cache_dir / version / "lib"


def is_cached(version: str, cache_dir: Path) -> bool:
    return (cache_dir / version / MARKER).is_file()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize downloads of one version across processes (e.g. parallel test sessions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_kafka(
    version: str = DEFAULT_VERSION,
    cache_dir: Path | None = None,
    *,
    out: TextIO | None = None,
) -> Path:
    """Return the directory of Kafka ``version``'s broker jars, downloading them on first use.

    Progress goes to ``out`` (stderr by default). Raises KafkaSetupError when ``mvn``/``java`` is
    missing or Maven fails (with the tail of its output).
    """
    major_version(version)
    cache_dir = (cache_dir or default_cache_dir()).expanduser()
    out = out or sys.stderr
    lib = lib_dir(version, cache_dir)
    if is_cached(version, cache_dir):
        return lib
    require_java()  # no point downloading 80 MB for a machine that cannot run them
    mvn = require_mvn()
    with _locked(cache_dir / f".{version}.lock"):
        if is_cached(version, cache_dir):  # another process finished while we waited
            return lib
        _download(mvn, version, cache_dir / version, out)
    return lib


def _download(mvn: str, version: str, root: Path, out: TextIO) -> None:
    lib = root / "lib"
    partial = root / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(lib, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    pom = root / "pom.xml"
    pom.write_text(render_pom(version))

    print(
        f"downloading Kafka {version} jars from Maven Central (first run only)…",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    cmd = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    _run_maven(cmd, out)

    partial.rename(lib)
    jars = list(lib.glob("*.jar"))
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise KafkaSetupError(f"Maven finished but {lib} has no kafka_2.13 jar")
    size_mb = sum(j.stat().st_size for j in jars) / 1e6
    (root / MARKER).write_text(f"{version}\n")
    elapsed = time.monotonic() - started
    print(
        f"Kafka {version}: {len(jars)} jars, {size_mb:.1f} MB in {elapsed:.1f}s → {lib}",
        file=out,
        flush=True,
    )


def _run_maven(cmd: list[str], out: TextIO) -> None:
    """Run Maven, showing one compact counter of downloaded artifacts instead of its log."""
    tail: deque[str] = deque(maxlen=40)
    downloaded = 0
    interactive = out.isatty()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MAVEN_OPTS": os.environ.get("MAVEN_OPTS", "-Xmx512m")},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail.append(line)
        if line.removeprefix("[INFO] ").startswith("Downloaded from"):
            downloaded += 1
            if interactive:
                print(f"\r  maven: {downloaded} files downloaded", end="", file=out, flush=True)
            elif downloaded % 100 == 0:
                print(f"  maven: {downloaded} files downloaded", file=out, flush=True)
    rc = proc.wait()
    if interactive and downloaded:
        print(file=out)
    if rc != 0:
        errors = [ln for ln in tail if ln.startswith("[ERROR]")] or list(tail)
        raise KafkaSetupError(
            f"mvn dependency:copy-dependencies failed (exit {rc}):\n" + "\n".join(errors[-15:])
        )
    print(f"  maven: done, {downloaded} files downloaded", file=out, flush=True)
