"""Refusing abuse must be the cheap path (issue 12, ``axhub bench abuse``).

Under a flood most requests are refused, so what a refusal costs is what the flood costs every
other tenant. A stream past the cap and a throttled sign-in are answered without the database
(no connection taken, no statement run); the stream cap is checked before the job is looked up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from _api_helpers import Hub, make_hub
from axhub.api.streams import PER_PRINCIPAL
from conftest import _postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    if request.param == "sqlite":
        yield make_hub(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}")
        return
    gen = _postgres_database()
    url = next(gen)
    try:
        made = make_hub(tmp_path, url)
        yield made
        made.db.dispose()
    finally:
        next(gen, None)


class DatabaseUse:
    """Counts connections taken from the pool and statements run while it is active."""

    def __init__(self, hub: Hub) -> None:
        self.engine = hub.db.engine
        self.checkouts = 0
        self.statements: list[str] = []

    def _checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> DatabaseUse:
        event.listen(self.engine, "checkout", self._checkout)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "before_cursor_execute", self._statement)


def _fill_stream_slots(hub: Hub, who: str) -> None:
    """Every stream the caller may hold is open (as if their tabs were streaming)."""
    with hub.client(who) as c:
        me = c.get("/api/v1/auth/me").json()
    for _ in range(PER_PRINCIPAL):
        hub.app.state.axhub.streams.take(hub.users[who], me["org"]["id"], 60)


def test_a_stream_past_the_cap_is_refused_without_the_database(hub: Hub) -> None:
    with hub.client("a_engineer") as eng:
        job = eng.post("/api/v1/jobs", json={"kind": "probe", "seconds": 0}).json()["id"]  # stays queued
    _fill_stream_slots(hub, "a_viewer")
    with hub.client("a_viewer") as viewer:
        assert viewer.get(f"/api/v1/jobs/{job}").status_code == 200  # the key is checked (and cached)
        for path in (
            f"/api/v1/jobs/{job}/events?timeout=5",
            "/api/v1/jobs/no-such-job/events?timeout=5",  # the cap comes before the look-up
            "/api/v1/alerts/stream?timeout=5",
        ):
            with DatabaseUse(hub) as used:
                r = viewer.get(path)
            assert r.status_code == 429, (path, r.text)
            assert int(r.headers["Retry-After"]) > 0
            assert r.json()["error"]["code"] == "too_many_requests"
            assert used.checkouts == 0 and used.statements == [], (path, used.statements)


def test_a_stream_for_a_missing_job_gives_its_slot_back(hub: Hub) -> None:
    with hub.client("a_viewer") as viewer:
        for _ in range(PER_PRINCIPAL + 2):  # more 404s than slots: none may leak one
            assert viewer.get("/api/v1/jobs/no-such-job/events?timeout=5").status_code == 404
    with hub.client("a_engineer") as eng:
        job = eng.post("/api/v1/jobs", json={"kind": "probe", "seconds": 0}).json()["id"]
        eng.post(f"/api/v1/jobs/{job}/cancel")  # an ended job: its stream says so and ends
    with hub.client("a_viewer") as viewer:
        r = viewer.get(f"/api/v1/jobs/{job}/events?timeout=5")
    assert r.status_code == 200
    assert "event: end" in r.text


def test_a_throttled_sign_in_is_refused_without_the_database(hub: Hub) -> None:
    email = "a_viewer@acme.example"
    with hub.client() as c:
        codes = [
            c.post("/api/v1/auth/login", json={"email": email, "password": f"wrong-{i}"}).status_code
            for i in range(hub.app.state.axhub.login_guard.account_free)
        ]
        assert codes == [401] * len(codes)
        with DatabaseUse(hub) as used:
            r = c.post("/api/v1/auth/login", json={"email": email, "password": "still wrong"})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert used.checkouts == 0 and used.statements == [], used.statements
