"""Engine and transactions. SQLite runs in WAL mode; PostgreSQL through psycopg 3."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import DatabaseSettings


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked; the sender should retry later."""


def make_engine(settings: DatabaseSettings) -> Engine:
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=settings.echo,
            # Each thread gets its own connection; WAL lets readers run beside the writer.
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=settings.pool_size,
        )
        _sqlite_pragmas(engine)
        return engine
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {},
    )


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # RFC 5321 §4.5.3.1: our 250 takes responsibility for the mail. In WAL mode NORMAL
        # skips the fsync at commit, so a power cut could lose mail we acknowledged; FULL
        # syncs every commit, and group commit (gateway/group_commit.py) spreads that cost.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that later
        # upgrades to a writer fails with SQLITE_BUSY at once instead of waiting. Readers
        # keep a deferred BEGIN so they run beside the writer (WAL).
        readonly = conn.get_execution_options().get("gateway_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """The engine plus a session factory; one `unit()` is one transaction."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Queueing our own writers on a lock is fair and
        # immediate; leaving it to SQLite's busy handler makes them poll with sleeps, which
        # showed up as a one-second p99 in bench/bench_smtp.py. A file database gets a lock
        # file too, so that several processes on it (daemons sharing the SMTP port, the CLI)
        # queue the same way instead of polling.
        self._write_lock: WriterLock | threading.Lock | None = None
        if self.dialect == "sqlite":
            path = self.engine.url.database
            on_disk = path and path != ":memory:" and not path.startswith("file:")
            self._write_lock = WriterLock(f"{path}.writer") if on_disk else threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit(self, *, readonly: bool = False) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error.

        Connection-level failures surface as StoreUnavailable so every edge can map them to
        "retry later" (SMTP 451, HTTP 503) in one place.
        """
        lock = self._write_lock if self._write_lock is not None and not readonly else nullcontext()
        try:
            with lock, self._sessions() as session, session.begin():
                if readonly:
                    session.connection(execution_options={"gateway_readonly": True})
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig) if exc.orig else str(exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(str(exc)) from exc
            raise

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # readiness probe: any failure means "not ready"
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if isinstance(self._write_lock, WriterLock):
            self._write_lock.close()


class WriterLock:
    """SQLite's writer slot as a lock: a thread lock within the process, and an flock(2) on
    a lock file beside the database across processes. flock waits in the kernel, woken when
    the holder lets go, where SQLite's busy handler would sleep and retry."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def __enter__(self) -> WriterLock:
        self._threads.acquire()
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
