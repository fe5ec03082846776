"""Safe file access: read only regular files (never block on a FIFO or stream a device), write
atomically only onto regular files or new paths, and serialise writers across processes with a
bounded, reported wait on an fcntl lock."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from promptkit.errors import ConfigError, PromptkitError

MAX_NAME_BYTES = 255  # one path component, as most file systems allow


def lock_timeout() -> float:
    """Seconds a writer waits for another process's lock (PROMPTKIT_LOCK_TIMEOUT, default 120)."""
    try:
        value = float(os.environ.get("PROMPTKIT_LOCK_TIMEOUT", "120"))
    except ValueError:
        return 120.0
    return value if value == value and 0 <= value < 1e6 else 120.0


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes. A device, FIFO, socket or folder is
    refused before anything is read (their size reads as 0, so a size check alone never applies);
    the read itself stops at limit + 1 bytes in case the file grows meanwhile."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", where=str(path)) from None
    except IsADirectoryError:
        raise ConfigError(f"{what} path is a folder, not a file", where=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read the {what}: {e.strerror or e}", where=str(path)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} path is {_kind(info.st_mode)}, not a regular file", where=str(path),
                              hint="give the path of an ordinary file")
        if info.st_size > limit:
            raise ConfigError(f"{what} is {info.st_size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit",
                              where=str(path), hint="is this the right file?")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
            total += len(block)
            if total > limit:
                raise ConfigError(f"{what} grew past the {limit / 1e6:.0f} MB limit while being read", where=str(path))
        return b"".join(chunks)
    except OSError as e:
        raise ConfigError(f"cannot read the {what}: {e.strerror or e}", where=str(path)) from None
    finally:
        os.close(fd)


def writable_target(path: Path) -> Path:
    """Where a write to `path` lands: the path itself, or the regular file a symlink names.
    Raises ConfigError for anything that is not a regular file or a new path (a device such as
    /dev/null, a FIFO, a folder), so an atomic rename never replaces one."""
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in path.parts):
        raise ConfigError(f"a file or folder name longer than {MAX_NAME_BYTES} bytes", where=str(path)[:120] + "...",
                          hint="use a shorter name")
    try:
        info = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigError("a symlink to nothing: refusing to replace it", where=str(path),
                              hint="remove the link or give another path") from None
        return path
    except OSError:
        return path  # a parent that is a file, no permission...: the write itself reports it (OSError)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"refusing to write over {_kind(info.st_mode)}", where=str(path),
                          hint="give the path of a regular file or a new one")
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it. Only onto a
    regular file (through a symlink, its target) or a new path. Raises OSError or ConfigError."""
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def file_lock(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """An exclusive fcntl lock on `path` (a folder, or a file created if missing) for the block:
    serialises writers across processes. Waits at most `timeout` seconds (lock_timeout()), says on stderr that it
    waits after one second, and raises PromptkitError naming the file when the wait runs out."""
    limit = lock_timeout() if timeout is None else timeout
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise PromptkitError(f"cannot lock {what}: {e.strerror or e}", where=str(path),
                             hint="check the folder's permissions") from None
    try:
        start = time.monotonic()
        told = False
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise PromptkitError(f"cannot lock {what}: {e.strerror or e}", where=str(path)) from None
            waited = time.monotonic() - start
            if waited >= limit:
                raise PromptkitError(f"{what} is locked by another process (waited {waited:.0f} s)", where=str(path),
                                     hint="wait for the other promptkit command to finish, or raise "
                                          "PROMPTKIT_LOCK_TIMEOUT")
            if waited > 1 and not told:
                print(f"note: waiting for another process's lock on {path}", file=sys.stderr)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock
