"""Shared fixtures: isolated settings, and metadata databases on SQLite and real PostgreSQL.

PostgreSQL tests use a fresh database per test session on 127.0.0.1:5432 (CI starts the
server). Where it is unreachable they skip, unless AXHUB_REQUIRE_POSTGRES=1 (set by
.ci/run) turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _torch import HAS_TORCH, NO_TORCH
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.timeseries import TimeSeriesStore


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``torch`` skip with a message where torch is absent, instead of erroring."""
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason=NO_TORCH)
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip)


PG_ADMIN_URL = os.environ.get("AXHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "axhub-home")
    s.ensure_dirs()
    return s


def _postgres_database() -> Iterator[str]:
    import psycopg

    name = f"axhub_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("AXHUB_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); start it or set AXHUB_TEST_POSTGRES_URL"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    yield from _postgres_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated metadata database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    else:
        # A fresh database per test keeps tests independent on the shared server.
        gen = _postgres_database()
        url = next(gen)
        request.addfinalizer(lambda: next(gen, None))
        db = Database(url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, one per test module (tests/_browser.py launches it)."""
    from _browser import chromium

    with chromium() as b:
        yield b


@pytest.fixture
def hub_env(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, TimeSeriesStore]]:
    """A migrated hub whose AXHUB_HOME child processes (federated members, SuperNodes) open too."""
    monkeypatch.setenv("AXHUB_HOME", str(settings.home))
    db = Database.from_settings(settings)
    db.migrate()
    yield db, TimeSeriesStore(settings.timeseries_root)
    db.dispose()
