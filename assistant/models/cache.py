"""Models built once from shipped weights, kept in a cache folder and checked before each use.

A built file is named after what it was built from (`key`: the SHA-256 of the source weights), so new
weights make a new file. A manifest written after the file holds its size and SHA-256: a file without one
(a build killed halfway) or that does not match it is built again, never used. One process builds at a
time (a lock file); the others wait and take its result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


class BuildError(RuntimeError):
    """A model could not be built or written; the message says what to do."""


def cache_folder() -> Path:
    """Where built models are kept: $XDG_CACHE_HOME/seller-assistant, else ~/.cache/seller-assistant."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seller-assistant"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cached(name: str, key: str, build: Callable[[Path], None], cache: Path | None = None,
           progress: Callable[[str], None] = say, suffix: str = ".onnx") -> Path:
    """The file `name`-`key[:16]` in `cache` (default `cache_folder()`), made by `build(path)` first when it
    is missing or damaged. `build` writes the file at the path it is given (atomically, or the manifest
    check catches it)."""
    cache = Path(cache or cache_folder())
    path = cache / f"{name}-{key[:16]}{suffix}"
    manifest = path.with_suffix(".json")
    if intact(path, manifest):
        return path
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with locked(cache / f".{name}.lock"):
            if not intact(path, manifest):  # another process may have built it meanwhile
                if path.exists() or manifest.exists():
                    progress(f"{path} is incomplete or damaged; building it again")
                manifest.unlink(missing_ok=True)
                started = time.monotonic()
                build(path)
                # Written last: a file without its manifest is never used.
                write_atomically(manifest, json.dumps({"sha256": sha256(path), "bytes": path.stat().st_size,
                                                       "key": key, "seconds": round(time.monotonic() - started, 1)}))
    except OSError as exc:
        raise BuildError(f"{path}: cannot write it ({exc}); free disk space or set XDG_CACHE_HOME to a "
                         f"writable folder") from exc
    return path


def intact(path: Path, manifest: Path) -> bool:
    try:
        expected = json.loads(manifest.read_text(encoding="utf-8"))
        return path.stat().st_size == expected["bytes"] and sha256(path) == expected["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@contextmanager
def locked(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: two first runs at once both build, each writing atomically
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
