"""Service hardening against a real uvicorn process, on SQLite and PostgreSQL (issue 12).

These are the failures the in-process TestClient hides: it waits for everything the app does
after answering, so "answered before saved" never shows; pools, locks and timing need a real
server on a socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _live import Live, live_server
from conftest import _postgres_database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp(f"live-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'meta.db'}"
        with live_server(home, url) as server:
            yield server
    else:
        gen = _postgres_database()
        url = next(gen)
        try:
            with live_server(home, url) as server:
                yield server
        finally:
            next(gen, None)


# -------------------------------------------------------------- 2: commit before responding
def test_a_read_straight_after_a_create_finds_it(live: Live) -> None:
    """The commit happens before the 201 leaves: 60 create -> read loops, none may 404."""
    misses = []
    with live.client("a_engineer") as c:
        site = c.post("/api/v1/sites", json={"name": "commit race"}).json()["id"]
        for i in range(30):
            r = c.post("/api/v1/assets", json={"site_id": site, "name": f"race {i}"})
            assert r.status_code == 201, r.text
            got = c.get(f"/api/v1/assets/{r.json()['id']}")
            if got.status_code != 200:
                misses.append(("asset", i, got.status_code))
            r = c.post("/api/v1/datasets", json={"name": f"race{i}", "spec": {"source": "example", "estimator": "anomaly/mspc"}})
            assert r.status_code == 201, r.text
            got = c.get(f"/api/v1/datasets/{r.json()['id']}")
            if got.status_code != 200:
                misses.append(("dataset", i, got.status_code))
    assert misses == []
