"""Write files so that a reader sees the old content or the new, never half of either.

Every writer stages beside its target, in the target's own folder, and renames into place: a
rename is atomic only within one file system, and the temporary folder ($TMPDIR, often a tmpfs)
may be another one. Data we write ourselves goes through `atomic_writer` (or the helpers on
it); a file a tool writes by name (a compiler, a downloader, a GGUF writer) through
`staged_file`; a tool that names its own output writes into `staging_folder`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _current_umask() -> int:
    """The process's umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(fd: int, target: Path) -> None:
    """The mode a plain `open(target, "w")` would give: the existing file's, else 0666 less the
    umask. (mkstemp makes 0600, which would hide a rendered Modelfile or an HTML report from a
    daemon or web server running as another user.)"""
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    os.fchmod(fd, mode)


def _stage_beside(target: Path) -> tuple[int, str]:
    """A new temporary file in `target`'s folder (made if missing), with the mode `target` will
    have: its descriptor and path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _publish_mode(fd, target)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


@contextmanager
def staging_folder(beside: str | os.PathLike[str]) -> Iterator[Path]:
    """A private scratch folder in the folder of `beside` (made if missing), removed with
    whatever is left in it on leaving: for tools that name their own output (a downloader,
    an archive). Publish from it with `move_into_place`."""
    target = Path(beside)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=f".{target.name}.staging-", dir=target.parent
    ) as folder:
        yield Path(folder)


@contextmanager
def staged_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A path, not yet existing, on the file system of `path`, for a tool that writes a file
    by name; on a clean exit what it wrote there is fsynced and renamed over `path`, on an
    exception removed (and `path` left as it was). A `path` that exists and is not a regular
    file (a directory, a FIFO) is refused here, before the tool does its work."""
    target = Path(path)
    check_output(target)
    with staging_folder(target) as folder:
        staged = folder / target.name
        yield staged
        move_into_place(staged, target)


def _kind(mode: int) -> str:
    import stat

    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse an output path that exists and is not a regular file (a FIFO would block the
    writer, or the reader comparing old with new; a device would be written into): one-line
    InputError naming it. A missing path, or a link to a regular file, is fine."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        from qwq_ollama.errors import InputError

        raise InputError(f"is {_kind(mode)}, not a regular file: refused as an output", file=path)


def read_existing(path: str | os.PathLike[str]) -> bytes | None:
    """An output's current bytes, to compare with new ones; None when it is missing or
    unreadable. Never opens anything but a regular file (check_output refuses the rest)."""
    check_output(path)
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside `path`; on a clean exit it is fsynced and
    renamed over `path`, on an exception removed. For data that arrives in pieces."""
    target = Path(path)
    check_output(target)
    fd, tmp = _stage_beside(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Readers see the old content or `data`, never a part of it."""
    with atomic_writer(path) as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8, newlines exactly as given (no platform translation)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_many_atomic(files: dict[Path, str]) -> None:
    """Write several files all-or-nothing, as far as a file system allows.

    Every file is encoded and staged (written and fsynced beside its target) first; only when
    all are staged are they renamed into place, and renames need no free space. A failure while
    staging (a bad value, a full disk, an unwritable folder) leaves every target untouched.
    """
    encoded = {Path(p): text.encode("utf-8") for p, text in files.items()}
    for target in encoded:
        check_output(target)
    staged: list[tuple[str, Path]] = []
    try:
        for target, data in encoded.items():
            fd, tmp = _stage_beside(target)
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    try:
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:  # a rename that failed (a folder in the way) leaves no temp files behind
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def write_folder(out_dir: str | os.PathLike[str], files: dict[str, str]) -> list[Path]:
    """Write an export: the named files into `out_dir`, every one or none (they belong
    together); bad places are one-line InputErrors naming the folder. Returns the paths."""
    from qwq_ollama.errors import InputError

    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InputError("not a directory: cannot export into it", file=folder)
    targets = {folder / name: text for name, text in files.items()}
    in_the_way = [str(p) for p in targets if p.is_dir()]
    if in_the_way:
        raise InputError(f"a folder is in the way of {', '.join(in_the_way)}", file=folder)
    try:
        write_many_atomic(targets)
    except OSError as exc:
        raise InputError(
            f"cannot write the export here: {exc.strerror or exc}", file=folder
        ) from None
    return list(targets)


def move_into_place(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Publish a file staged on `target`'s file system (`staged_file`, `staging_folder`): fsync
    it, then rename it over `target`, so a crash never leaves a partial file under that name."""
    with open(staged, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(staged, target)
