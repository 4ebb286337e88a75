"""Reading and writing the files the user names, safely against hostile ones.

Every file the checker reads whole (a trace, a lockfile, a spec, a kernel source
file) goes through :func:`read_text`, and every file it writes (exports, graphs,
counterexamples, JUnit, SARIF, the lockfile) through :func:`write_text`,
:func:`write_chunks` (a text too large to hold whole) or :func:`write_together`.

Reading refuses anything that is not a regular file *before opening it* (opening a
FIFO for reading blocks until a writer comes, i.e. forever), and any file larger
than the caller's limit before reading it.

Writing never replaces what is not a regular file:

* a regular file, or a new one, is written to a temporary file beside it and
  renamed over it, so a reader sees the old file or the new one, never half;
* a symlink is written through: its target is replaced atomically, the link kept;
  a dangling one's target is created, if its folder exists (never its folders);
* a device or a FIFO (``/dev/null``, ``/dev/stdout``, ``>(cat)``) is opened and
  written to, never renamed over; a FIFO without a reader is an error, not a hang,
  and so is a write that fails (``/dev/full``: no space left on device);
* a directory is refused (an empty name is ``.``: the CLI refuses ``''``).

Failures are :class:`FileError` (an ``InputError``, exit 2), one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from checker.errors import InputError
from checker.limits import MAX_TEXT_BYTES


class FileError(InputError):
    """A file that cannot be read or written as asked."""


class MissingFile(FileError):
    """The file does not exist (a reader may treat that as "nothing yet")."""


#: each kind of file, by the test of its mode, in words
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
)


def kind(mode: int) -> str:
    """What a file of ``mode`` is, in words: ``a FIFO``, ``a character device``, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- reading ----------------------------------------------------------------------------


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES, what: str = "file") -> bytes:
    """The whole content of the regular file ``path``, at most ``limit`` bytes.

    ``what`` names what the file should be, for the messages (``a trace``). A
    missing file is :class:`MissingFile`; a directory, a FIFO, a device or a socket
    is refused without being opened; a larger file is refused without being read.
    """
    try:
        before = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise MissingFile(f"{path}: a dangling symlink (to {target}); pass {what}") from None
        raise MissingFile(f"{path}: no such file; pass {what}") from None
    except OSError as exc:
        raise FileError(f"{path}: cannot read: {_reason(exc)}") from None
    _check_readable(path, before, limit, what)
    try:
        # O_NONBLOCK: if a FIFO took the file's place since the stat, opening it
        # must not wait for a writer; fstat below refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileError(f"{path}: cannot read: {_reason(exc)}") from None
    try:
        _check_readable(path, os.fstat(fd), limit, what)
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileError(f"{path}: cannot read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if size > limit:  # it grew since the stat
        raise _too_large(path, size, limit, what)
    return b"".join(chunks)


def _check_readable(path: Path, status: os.stat_result, limit: int, what: str) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise FileError(f"{path}: is a directory; pass {what}")
    if not stat.S_ISREG(status.st_mode):
        raise FileError(f"{path}: not a regular file ({kind(status.st_mode)}); pass {what}")
    if status.st_size > limit:
        raise _too_large(path, status.st_size, limit, what)


def _too_large(path: Path, size: int, limit: int, what: str) -> FileError:
    return FileError(
        f"{path}: too large for {what} ({size} bytes; the limit is {limit}); pass {what}"
    )


def read_text(
    path: Path, limit: int = MAX_TEXT_BYTES, what: str = "a file", errors: str = "strict"
) -> str:
    """:func:`read_bytes` decoded as UTF-8; with ``errors="strict"`` a file that is
    not UTF-8 is a :class:`FileError` naming the offset of the first bad byte."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise FileError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"pass {what}"
        ) from None


# --- writing ----------------------------------------------------------------------------


def write_text(path: Path, text: str, option: str = "") -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` as the module docstring
    says: atomically to a regular file (through a symlink to its target), by
    writing into a device or FIFO, never replacing either. ``option`` (``-o``)
    starts the error messages."""
    target = _target(path, option)
    data = text.encode("utf-8")
    if target is None:
        _write_through(path, [data], option)
        return
    temporary = _temporary(target, [data], option)
    try:
        os.replace(temporary, target)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, option, exc) from None
        raise


#: how much of a text made in chunks is written at a time
_BLOCK = 1 << 20


def _blocks(chunks: Iterable[str]) -> Iterator[bytes]:
    """``chunks`` encoded as UTF-8, in blocks of about :data:`_BLOCK` bytes."""
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= _BLOCK:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


def write_chunks(path: Path, chunks: Iterable[str], option: str = "") -> None:
    """Write the text ``"".join(chunks)`` to ``path`` as :func:`write_text` writes a
    text, without holding it whole: the chunks are made as they are written. A
    regular file gets a temporary file renamed over it once the last chunk is in; a
    device or FIFO gets the text once it is all made (it is spooled to an unnamed
    temporary file first). So if making a chunk fails or is interrupted, nothing
    is written anywhere."""
    target = _target(path, option)
    if target is None:
        with _spooled(path, chunks, option) as spool:
            _write_through(path, iter(lambda: spool.read(_BLOCK), b""), option)
        return
    temporary = _temporary(target, _blocks(chunks), option)
    try:
        os.replace(temporary, target)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, option, exc) from None
        raise


@contextlib.contextmanager
def _spooled(path: Path, chunks: Iterable[str], option: str) -> Iterator[IO[bytes]]:
    """An unnamed temporary file holding ``chunks``, read from its start."""
    try:
        with tempfile.TemporaryFile() as spool:
            for block in _blocks(chunks):
                spool.write(block)
            spool.seek(0)
            yield spool
    except OSError as exc:
        raise _cannot_write(path, option, exc) from None


def write_together(files: Sequence[tuple[Path, str]], option: str = "") -> None:
    """Write every ``(path, text)`` of ``files``, or none of them.

    All temporaries are written first, then renamed one by one; if anything fails,
    the temporaries and every file renamed by this call are removed, so a reader
    never finds one file of the set without the others (a file of the set that
    existed before is gone then: a stale partner is worse than none). Each path
    must be a regular file or new; a device, FIFO or directory is refused.
    """
    targets = []
    for path, _ in files:
        target = _target(path, option)
        if target is None:
            mode = os.stat(path).st_mode
            raise FileError(
                f"{_prefix(option)}{path}: not a regular file ({kind(mode)}); remove it"
            )
        targets.append(target)
    temporaries: list[str] = []
    renamed: list[Path] = []
    try:
        for target, (_, text) in zip(targets, files, strict=True):
            temporaries.append(_temporary(target, [text.encode("utf-8")], option))
        for temporary, target in zip(temporaries, targets, strict=True):
            os.replace(temporary, target)
            renamed.append(target)
    except BaseException as exc:
        for temporary in temporaries:
            Path(temporary).unlink(missing_ok=True)
        for target in renamed:
            target.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            failed = targets[len(renamed)] if len(renamed) < len(targets) else targets[-1]
            raise _cannot_write(failed, option, exc) from None
        raise


def _prefix(option: str) -> str:
    return f"{option} " if option else ""


def _cannot_write(path: Path, option: str, exc: OSError) -> FileError:
    return FileError(f"{_prefix(option)}{path}: cannot write: {_reason(exc)}")


def _target(path: Path, option: str) -> Path | None:
    """The regular file to replace for ``path`` (its symlink's target, resolved),
    or None if ``path`` is a device, FIFO or socket to write into."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        # new, or a dangling symlink: create the file (the link's target)
        return dangling_target(path, option) if os.path.islink(path) else path
    except OSError as exc:
        raise _cannot_write(path, option, exc) from None
    if stat.S_ISDIR(status.st_mode):
        raise FileError(f"{_prefix(option)}{path}: is a directory; pass a file name")
    if not stat.S_ISREG(status.st_mode):
        return None
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def dangling_target(path: Path, option: str = "") -> Path:
    """The file a dangling symlink ``path`` points to, to be created; a
    :class:`FileError` unless its folder exists: a link names a file where its
    owner put it, and a missing folder there is a mistake (a link to a removed
    tree, a typo) that creating folders along the link would hide."""
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise FileError(
            f"{_prefix(option)}{path}: a symlink to {os.readlink(path)}, whose folder "
            f"{target.parent} does not exist; create it or pass another file name"
        )
    return target


def _temporary(target: Path, blocks: Iterable[bytes], option: str) -> str:
    """A temporary file beside ``target`` holding ``blocks``, with the mode a plain
    ``open()`` would give a new file; removed again if writing it fails (or making
    a block does)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise _cannot_write(target, option, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            for block in blocks:
                f.write(block)
        os.chmod(temporary, 0o666 & ~_umask())
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(target, option, exc) from None
        raise
    return temporary


def _write_through(path: Path, blocks: Iterable[bytes], option: str) -> None:
    """Write ``blocks`` into the device, FIFO or socket ``path``."""
    try:
        # O_NONBLOCK: a FIFO nobody reads fails (ENXIO) instead of waiting forever
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise FileError(
                f"{_prefix(option)}{path}: nothing reads from it ({kind(os.stat(path).st_mode)} "
                "without a reader); start the reader first or pass a file name"
            ) from None
        raise _cannot_write(path, option, exc) from None
    try:
        # once open, block as any writer does while the reader catches up
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        for block in blocks:
            view = memoryview(block)
            while view:
                written = os.write(fd, view)
                view = view[written:]
    except OSError as exc:
        raise _cannot_write(path, option, exc) from None
    finally:
        os.close(fd)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
