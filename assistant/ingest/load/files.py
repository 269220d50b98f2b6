"""Finding the library's files and reading their bytes within the size limit."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .base import LoadError, printable

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl",
             ".docx", ".xlsx", ".csv", ".pptx", ".png", ".jpg", ".jpeg", ".webp")


def unsupported(path: Path) -> str:
    """The reason a file of a type the library does not read is refused."""
    kind = path.suffix.lower() or "a name without an extension"
    return f"not a supported format: {kind}; supported: {', '.join(SUPPORTED)}"


def iter_files(paths: list[str | Path], problems: list[LoadError] | None = None) -> Iterator[Path]:
    """Supported files under `paths` (files or folders), sorted, hidden files skipped.

    What cannot be indexed is added to `problems`, by name and with the reason, and skipped:
    files of a type the library does not read, folders that cannot be opened, names that are not
    UTF-8, FIFOs and other special files, and links that dangle, loop or lead out of the library
    (a link within it is followed). A path that does not exist raises LoadError.
    """
    problems = [] if problems is None else problems
    roots = [Path(p) for p in paths]
    library = [r.resolve() for r in roots if r.exists()]
    for root in roots:
        if not root.exists():
            raise LoadError(root, "no such file or folder")
        if root.is_dir():
            yield from _walk(root, library, problems)
        elif (reason := _unreadable(root, library)) is None:
            yield root
        else:
            problems.append(LoadError(root, reason))


def _walk(root: Path, library: list[Path], problems: list[LoadError]) -> Iterator[Path]:
    def folder_error(exc: OSError) -> None:
        problems.append(LoadError(exc.filename, f"cannot open the folder ({exc.strerror}); check its permissions"))

    for folder, dirs, names in os.walk(root, onerror=folder_error):
        # Links to folders are not descended into (os.walk does not follow them); report those
        # that would have led somewhere bad, the others' files are indexed where they are.
        for d in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            dirs.remove(d)
            if not d.startswith(".") and (reason := _bad_link(Path(folder, d), library)):
                problems.append(LoadError(Path(folder, d), reason))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            if name.startswith("."):
                continue
            if path.suffix.lower() not in SUPPORTED:
                # Said by name: a seller who saved a Keynote deck must learn it is not in the library.
                problems.append(LoadError(path, unsupported(path)))
            elif (reason := _unreadable(path, library)) is None:
                yield path
            else:
                problems.append(LoadError(path, reason))


def _bad_link(path: Path, library: list[Path]) -> str | None:
    """Why the link `path` cannot be followed, or None when it leads to something in the library."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return f"a link to {printable(os.readlink(path))}, which does not exist; remove the link"
    except (RuntimeError, OSError):  # RuntimeError: Python 3.11's "Symlink loop"
        return "a link that loops back on itself; remove the link"
    if not any(target.is_relative_to(r) for r in library):
        return (f"a link to {printable(target)}, outside the library; copy the file into the library "
                "or index its folder too")
    return None


def _unreadable(path: Path, library: list[Path]) -> str | None:
    """Why the file `path` cannot be indexed, or None."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not valid UTF-8 (shown with \\xNN for the odd bytes); rename the file or its folder"
    if path.is_symlink() and (reason := _bad_link(path, library)):
        return reason
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot read the file ({exc.strerror}); check its permissions"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device); remove it from the library"
    return None


def read_file(path: Path, max_file_mb: float) -> bytes:
    """The bytes of a library file; LoadError when it is larger than `max_file_mb` (checked before
    reading, so memory stays bounded) or cannot be read."""
    limit = int(max_file_mb * 1_000_000)
    try:
        size = path.stat().st_size
        if size > limit:
            raise LoadError(path, f"{size / 1e6:.1f} MB, larger than max_file_mb ({max_file_mb:g} MB); split the "
                                  "file, or raise max_file_mb if the machine has the memory for it")
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except OSError as exc:
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        hint = "check its permissions" if denied else "check the disk, or copy the file again"
        raise LoadError(path, f"cannot read the file ({exc.strerror}); {hint}") from exc
    if len(data) > size:
        raise LoadError(path, "the file grew while it was read; index again when it is written")
    return data
