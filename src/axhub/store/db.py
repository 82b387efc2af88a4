"""The metadata database: SQLite by default, PostgreSQL when the URL says so.

``Database(url).migrate()`` brings the schema to the latest Alembic revision; sessions come
from ``Database.session()``. Tenant data is read and written through
``axhub.store.scoped.OrgScope``, never through raw sessions in upper layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from axhub.core.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (the driver AX Hub installs)."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a job writes; foreign keys are off by default in SQLite;
    # busy_timeout waits for a writer instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


SQLITE_KEPT_CONNECTIONS = 8


def _sqlite_pool(path: str | None) -> dict[str, Any]:
    """Keep a few SQLite connections open between sessions instead of one per session.

    A new connection costs its PRAGMAs, and closing the last one of a WAL database checkpoints
    and deletes the WAL, which the next open recreates while other connections wait on the lock.
    Under the abuse benchmark's combined attack that open/close churn was about a third of the
    API server's busy time, paid again by every plain read. Idle connections are kept (pool_size);
    more concurrent sessions than that still get a connection at once (unbounded overflow, closed
    on return), so nothing ever queues for one. In-memory URLs are left as they were.
    """
    if not path or path == ":memory:":
        return {"poolclass": NullPool}
    return {"poolclass": QueuePool, "pool_size": SQLITE_KEPT_CONNECTIONS, "max_overflow": -1}


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **_sqlite_pool(path))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """One metadata database: engine, sessions and migrations."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        settings = settings or get_settings()
        return cls(settings.database_url)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["engine"] = self.engine
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` (idempotent)."""
        command.upgrade(self.alembic_config(), revision)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
