"""Opening promptkit's SQLite files (the run store and the response cache) safely.

Opening, checking and migrating a file is serialised across processes by an fcntl lock on
`<file>.lock`, so any number of processes may open a brand-new project at once (setting WAL
mode needs an exclusive lock that SQLite's busy timeout does not wait for). The busy timeout is
set before anything else. A file that is not SQLite, or a database of another schema, is
detected before anything is written to it."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Self

from promptkit.errors import PromptkitError
from promptkit.fileio import file_lock, lock_timeout


class DamagedDatabase(PromptkitError):
    """The file is not an SQLite database, or a damaged one."""


class ForeignDatabase(PromptkitError):
    """An SQLite database, but not one promptkit wrote (other tables or columns)."""


class Closing:
    """`with store:` closes it; the CLI hands stores to click's context, which closes them at exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def connect(path: Path) -> sqlite3.Connection:
    """A connection that waits for other writers up to lock_timeout(), busy timeout set first."""
    db = sqlite3.connect(str(path), timeout=lock_timeout(), isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout={int(lock_timeout() * 1000)}")
    return db


def open_readonly(path: Path, what: str) -> sqlite3.Connection:
    """A read-only connection (a viewer's), opened under the file's lock so it never sees a file
    another process is creating or migrating; header checked first, busy timeout set."""
    with file_lock(lock_path(path), what):
        check_header(path, what)
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout(),
                                 check_same_thread=False)
        except sqlite3.Error as e:
            raise PromptkitError(f"cannot open {what}: {e}", where=str(path)) from None
        try:
            db.execute(f"PRAGMA busy_timeout={int(lock_timeout() * 1000)}")
            _probe(db, what)
        except (DamagedDatabase, sqlite3.Error) as e:
            db.close()
            if isinstance(e, DamagedDatabase):
                e.where = str(path)
                raise
            raise PromptkitError(f"cannot open {what}: {e}", where=str(path)) from None
        return db


def check_header(path: Path, what: str) -> None:
    """Refuse a device, FIFO or folder in the file's place, by stat alone.

    The file itself is never opened here: closing any descriptor of a file drops every fcntl lock
    this process holds on it, including those of SQLite connections still open on it (POSIX), and
    another process would then checkpoint and delete the WAL under them. SQLite reads the header
    itself (`_probe`), through descriptors it keeps open while it holds locks."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise PromptkitError(f"cannot read {what}: {e.strerror or e}", where=str(path)) from None
    if not stat.S_ISREG(mode):
        raise DamagedDatabase(f"{what} is not a regular file (a device, FIFO or folder is in its place)",
                              where=str(path))


def _probe(db: sqlite3.Connection, what: str) -> None:
    """Read the file's header before anything is written: a file of another format fails here."""
    try:
        db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise DamagedDatabase(f"{what} is not an SQLite database (damaged or overwritten)") from None
        raise


def tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    """table -> column names, for every user table."""
    names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {name: {row[1] for row in db.execute(f'PRAGMA table_info("{name}")')} for name in names}


def open_checked(path: Path, what: str, check: Callable[[sqlite3.Connection], object],
                 setup: Callable[[sqlite3.Connection], object]) -> sqlite3.Connection:
    """Open `path`: header check, `check` (read-only: raises ForeignDatabase) and only then WAL
    mode and `setup` (create or migrate), all under the file's lock. Damage found on the way
    raises DamagedDatabase; a lock held too long raises PromptkitError naming the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_path(path), what):
        check_header(path, what)
        db = None
        try:
            db = connect(path)
            _probe(db, what)
            check(db)
            db.execute("PRAGMA journal_mode=WAL")
            setup(db)
            return db
        except PromptkitError as e:
            if db is not None:
                db.close()
            e.where = e.where or str(path)
            raise
        except sqlite3.OperationalError as e:
            if db is not None:
                db.close()
            if "locked" in str(e) or "busy" in str(e):
                raise PromptkitError(f"{what} is locked by another process (waited {lock_timeout():.0f} s)",
                                     where=str(path), hint="wait for the other promptkit command, or raise "
                                     "PROMPTKIT_LOCK_TIMEOUT") from None
            raise PromptkitError(f"cannot open {what}: {e}", where=str(path),
                                 hint="check the file's and folder's permissions") from None
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            raise DamagedDatabase(f"{what} is damaged: {e}", where=str(path)) from None


def cannot_open(what: str, message: str) -> str:
    """'cannot open WHAT: MESSAGE', unless the message already says so."""
    return message if message.startswith("cannot open") else f"cannot open {what}: {message}"


def is_locked(error: sqlite3.Error) -> bool:
    text = str(error)
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
