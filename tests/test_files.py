"""``checker.files``: reading refuses what is not a regular file or is too large,
without opening or reading it; writing never replaces a device, FIFO or symlink."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from checker import files
from checker.files import FileError, MissingFile

#: /dev/full and /dev/null, made in tmp_path: a test must never touch the real ones
FULL, NULL = os.makedev(1, 7), os.makedev(1, 3)


def device(tmp_path: Path, number: int, name: str = "dev") -> Path:
    """A character device node in tmp_path (root only: the test skips otherwise)."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, number)
        with open(path, "w"):
            pass
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc.strerror}")
    return path


def fifo(tmp_path: Path, name: str = "fifo") -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


# --- reading ----------------------------------------------------------------------------


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path, deadline: None) -> None:
    path = fifo(tmp_path)
    with pytest.raises(FileError, match=r"fifo: not a regular file \(a FIFO\); pass a trace$"):
        files.read_text(path, what="a trace")


def test_a_device_and_a_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=r"^/dev/null: not a regular file \(a character device\)"):
        files.read_text(Path("/dev/null"))
    with pytest.raises(FileError, match="is a directory"):
        files.read_text(tmp_path)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(5 * 1024**3)  # 5 GB, sparse: costs nothing unless read
    with pytest.raises(FileError, match=r"too large for a trace \(5368709120 bytes; the limit"):
        files.read_text(path, limit=1024, what="a trace")


def test_missing_dangling_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match="no such file"):
        files.read_text(tmp_path / "nope")
    (tmp_path / "link").symlink_to("nowhere")
    with pytest.raises(MissingFile, match=r"a dangling symlink \(to nowhere\)"):
        files.read_text(tmp_path / "link")
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    with pytest.raises(FileError, match=r"not UTF-8 text \(byte 0xe9 at offset 3\)"):
        files.read_text(tmp_path / "latin1")


# --- writing ----------------------------------------------------------------------------


def test_a_regular_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "t.json"
    files.write_text(target, "new\n")
    files.write_text(target, "newer\n")
    assert target.read_text() == "newer\n"
    assert [p.name for p in target.parent.iterdir()] == ["t.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "t.json"
    target.write_text("old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(FileError, match=r"^-o .*t.json: cannot write: No space left on device$"):
        files.write_text(target, "new", "-o")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_a_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    null = device(tmp_path, NULL, "null")
    files.write_text(null, "text\n", "-o")
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    full = device(tmp_path, FULL, "full")
    with pytest.raises(FileError, match=r"^-o .*full: cannot write: No space left on device$"):
        files.write_text(full, "text\n", "-o")
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null"]


def test_a_fifo_is_written_into_and_one_without_reader_is_an_error(
    tmp_path: Path, deadline: None
) -> None:
    path = fifo(tmp_path)
    with pytest.raises(FileError, match=r"fifo: nothing reads from it \(a FIFO without a reader\)"):
        files.write_text(path, "text\n", "--junit")
    received: list[bytes] = []
    ready = threading.Event()

    def reader() -> None:
        # O_RDWR: open at once (Linux), and no EOF before the writer comes
        fd = os.open(path, os.O_RDWR)
        ready.set()
        data = b""
        while len(data) < 200_000:
            data += os.read(fd, 200_000 - len(data))
        os.close(fd)
        received.append(data)

    thread = threading.Thread(target=reader)
    thread.start()
    ready.wait()
    files.write_text(path, "x" * 200_000, "--junit")  # more than a pipe holds
    thread.join()
    assert received == [b"x" * 200_000]
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    files.write_text(link, "new")
    assert os.readlink(link) == "real.json" and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("created.json")
    files.write_text(dangling, "made")
    assert (tmp_path / "created.json").read_text() == "made"
    assert os.readlink(dangling) == "created.json"


def test_a_dangling_symlink_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    """``-o link`` with ``link -> nowhere/x.json``: the link's folder is not created
    (a link to a removed tree or a typo); refused, before any work, in one line."""
    from click.testing import CliRunner

    from checker.cli import cli

    from .conftest import SPECS

    link = tmp_path / "link.json"
    link.symlink_to("nowhere/x.json")
    refusal = (
        f"{link}: a symlink to nowhere/x.json, whose folder {tmp_path / 'nowhere'} "
        "does not exist; create it or pass another file name"
    )
    with pytest.raises(FileError) as raised:
        files.write_text(link, "x", "-o")
    assert str(raised.value) == f"-o {refusal}"
    with pytest.raises(FileError):
        files.write_together([(link, "x")])
    result = CliRunner().invoke(
        cli, ["graph", "--rule", "new", "--specs", str(SPECS), "-o", str(link)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"checker: error: -o {refusal}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json"]


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="is a directory; pass a file name"):
        files.write_text(tmp_path, "x", "-o")


def test_files_written_together_are_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = [(tmp_path / "t.json", "json"), (tmp_path / "t.graphml", "graphml")]
    real = os.replace
    calls: list[object] = []

    def second_fails(source: str, target: object) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(FileError, match=r"t.graphml: cannot write: No space left on device$"):
        files.write_together(pair)
    assert list(tmp_path.iterdir()) == []


def test_a_device_output_is_checked_for_writing_itself_not_its_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user who cannot create files in /dev can still write into /dev/null: the
    check before any work asks about the device, not its folder."""
    from checker.cli.common import ensure_file_writable
    from checker.errors import InputError

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != "/dev" and real(p, mode))
    ensure_file_writable(Path("/dev/null"), "--junit")
    with pytest.raises(InputError, match="cannot write there"):
        ensure_file_writable(Path("/dev/new-file"), "--junit")


# --- a text made in chunks ----------------------------------------------------------------


def _chunks(count: int, fail_at: int | None = None) -> object:
    for i in range(count):
        if i == fail_at:
            raise KeyboardInterrupt  # what Ctrl-C would stop the making of the text with
        yield f"line {i}\n"


def test_chunks_are_written_as_one_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "t.json"
    files.write_chunks(target, _chunks(300_000), "-o")  # type: ignore[arg-type]
    assert target.read_text() == "".join(f"line {i}\n" for i in range(300_000))
    files.write_chunks(target, iter([]), "-o")
    assert target.read_text() == ""
    assert [p.name for p in target.parent.iterdir()] == ["t.json"]


def test_chunks_that_fail_midway_leave_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        files.write_chunks(target, _chunks(300_000, fail_at=200_000), "-o")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_chunks_go_into_a_device_or_fifo_only_once_all_are_made(
    tmp_path: Path, deadline: None
) -> None:
    full = device(tmp_path, FULL, "full")
    with pytest.raises(FileError, match=r"^-o .*full: cannot write: No space left on device$"):
        files.write_chunks(full, _chunks(10), "-o")  # type: ignore[arg-type]
    path = fifo(tmp_path)
    received: list[bytes] = []

    def reader() -> None:
        fd = os.open(path, os.O_RDONLY)  # until the writer opens it
        data = b""
        while chunk := os.read(fd, 1 << 16):
            data += chunk
        os.close(fd)
        received.append(data)

    # the making fails before anything is sent: the FIFO is never opened for writing
    # (so the reader, waiting on open, is not there yet)
    with pytest.raises(KeyboardInterrupt):
        files.write_chunks(path, _chunks(300_000, fail_at=200_000), "-o")  # type: ignore[arg-type]
    thread = threading.Thread(target=reader)
    thread.start()
    # O_NONBLOCK open fails without a reader: wait until the reader has opened it
    while True:
        try:
            files.write_chunks(path, _chunks(300_000), "-o")  # type: ignore[arg-type]
            break
        except FileError:
            continue
    thread.join()
    assert received == ["".join(f"line {i}\n" for i in range(300_000)).encode()]
