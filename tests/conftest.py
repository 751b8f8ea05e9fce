"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from gateway.config import DatabaseSettings, Settings, load_settings
from gateway.storage import migrate
from gateway.storage.db import Database
from tests.daemons import Running, init, running

PG_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _shared_dir() -> Path:
    """The shared folder (corpus, contract): beside the project root, or where it is given.

    A CI clone may not sit beside it, so $GATEWAY_TEST_SHARED_DIR and the workplace's usual
    place are tried as well.
    """
    candidates = [
        os.environ.get("GATEWAY_TEST_SHARED_DIR", ""),
        str(Path(__file__).resolve().parents[1].parent / "shared"),
        "/work/shared",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "corpus").is_dir():
            return Path(candidate)
    return Path(candidates[1])


SHARED = _shared_dir()


def need_postgres() -> str:
    """The PostgreSQL URL, or skip (outside CI) / fail (under CI=true)."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but GATEWAY_TEST_POSTGRES_URL is not set")
        pytest.skip("GATEWAY_TEST_POSTGRES_URL not set")
    return PG_URL


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = need_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    base = load_settings(None, require_file=False)
    return base.model_copy(
        update={"database": DatabaseSettings(url=db_url), "config_dir": tmp_path}
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database)
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate for localhost / 127.0.0.1: (cert.pem, key.pem)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if IN_CI:
            pytest.fail("openssl missing (CI=true)")
        pytest.skip("openssl missing")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    """`gateway init` + `gateway run` on loopback ports, ready; rules re-read every 0.2 s."""
    with running(init(tmp_path), {"GATEWAY_RULES__WATCH_SECONDS": "0.2"}) as started:
        yield started
