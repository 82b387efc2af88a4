"""Service hardening against a real uvicorn process, on SQLite and PostgreSQL (issue 12).

These are the failures the in-process TestClient hides: it waits for everything the app does
after answering, so "answered before saved" never shows; pools, locks and timing need a real
server on a socket.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from _api_helpers import PASSWORD
from _live import Live, live_server
from conftest import PG_ADMIN_URL, _postgres_database


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
            r = c.post(
                "/api/v1/datasets",
                json={"name": f"race{i}", "spec": {"source": "example", "estimator": "anomaly/mspc"}},
            )
            assert r.status_code == 201, r.text
            got = c.get(f"/api/v1/datasets/{r.json()['id']}")
            if got.status_code != 200:
                misses.append(("dataset", i, got.status_code))
    assert misses == []


# -------------------------------------------------------------- 4: access dies with its owner
def _session(live: Live, email: str, password: str, ip: str = "10.9.0.1") -> httpx.Client:
    c = live.client(headers={"X-Forwarded-For": ip})
    r = c.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def _new_user(live: Live, role: str) -> tuple[str, str]:
    email = f"u{uuid.uuid4().hex[:8]}@acme.example"
    with live.client("a_admin") as admin:
        r = admin.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": role})
        assert r.status_code == 201, r.text
        return r.json()["id"], email


def test_a_key_acts_with_its_owners_current_rights_and_dies_with_them(live: Live) -> None:
    user_id, email = _new_user(live, "admin")
    me = _session(live, email, PASSWORD)
    r = me.post("/api/v1/keys", json={"name": "k", "scopes": ["read", "write", "admin"]})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    with live.client(headers={"Authorization": f"Bearer {key}"}) as k, live.client("a_admin") as admin:
        assert k.get("/api/v1/users").status_code == 200
        assert admin.patch(f"/api/v1/users/{user_id}", json={"role": "viewer"}).status_code == 200
        assert k.get("/api/v1/users").status_code == 403  # at once, not after a cache expires
        assert k.post("/api/v1/sites", json={"name": "as viewer"}).status_code == 403
        assert k.get("/api/v1/sites").status_code == 200  # still a viewer
        assert admin.patch(f"/api/v1/users/{user_id}", json={"is_active": False}).status_code == 200
        assert k.get("/api/v1/sites").status_code == 401
        assert admin.patch(f"/api/v1/users/{user_id}", json={"is_active": True}).status_code == 200
        assert k.get("/api/v1/sites").status_code == 200
        assert admin.delete(f"/api/v1/users/{user_id}").status_code == 200
        assert k.get("/api/v1/sites").status_code == 401
        revoked = [x for x in admin.get("/api/v1/keys").json()["items"] if x["prefix"] in key]
        assert revoked and revoked[0]["revoked_at"] is not None


def test_sessions_end_on_logout_password_change_and_admin_action(live: Live) -> None:
    user_id, email = _new_user(live, "engineer")
    first, second = _session(live, email, PASSWORD), _session(live, email, PASSWORD)
    assert first.post("/api/v1/auth/logout").status_code == 204
    assert second.get("/api/v1/sites").status_code == 401  # the copied cookie died too
    first, second = _session(live, email, PASSWORD), _session(live, email, PASSWORD)
    new = "another long passphrase here"
    r = first.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": new})
    assert r.status_code == 200, r.text
    first.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    assert first.get("/api/v1/sites").status_code == 200  # this browser got a fresh session
    assert second.get("/api/v1/sites").status_code == 401
    weak = first.post("/api/v1/auth/password", json={"current_password": new, "new_password": email})
    assert weak.status_code == 422 and "e-mail" in weak.text
    with live.client("a_admin") as admin:
        assert admin.post(f"/api/v1/users/{user_id}/sign-out").status_code == 200
        assert first.get("/api/v1/sites").status_code == 401
        first = _session(live, email, new)
        assert (
            admin.patch(f"/api/v1/users/{user_id}", json={"password": "reset by the admin"}).status_code
            == 200
        )
        assert first.get("/api/v1/sites").status_code == 401
        common = admin.post("/api/v1/users", json={"email": "c@acme.example", "password": "1q2w3e4r5t"})
        assert common.status_code == 422 and "common" in common.text


# -------------------------------------------------------------- 5: login is not a free DoS
def test_login_is_throttled_per_account_and_per_address(live: Live) -> None:
    _, email = _new_user(live, "viewer")
    with live.client(headers={"X-Forwarded-For": "10.9.1.1"}) as c:
        codes = [
            c.post("/api/v1/auth/login", json={"email": email, "password": f"wrong-{i}"}).status_code
            for i in range(6)
        ]
        assert codes[:5] == [401] * 5 and codes[5] == 429, codes
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right one waits
        assert r.json()["error"]["code"] == "too_many_requests"
    # one address guessing many accounts is stopped too; another address is not affected
    with live.client(headers={"X-Forwarded-For": "10.9.1.2"}) as c:
        codes = [
            c.post(
                "/api/v1/auth/login", json={"email": f"x{i}@nowhere.example", "password": "no"}
            ).status_code
            for i in range(21)
        ]
        assert codes[:20] == [401] * 20 and codes[20] == 429, codes
    with live.client(headers={"X-Forwarded-For": "10.9.1.3"}) as c:
        assert (
            c.post("/api/v1/auth/login", json={"email": "x1@nowhere.example", "password": "no"}).status_code
            == 401
        )


def test_a_login_flood_leaves_other_tenants_fast(live: Live) -> None:
    """40 parallel wrong-password sign-ins; another company's reads stay fast and nothing 500s."""

    def guess(i: int) -> int:
        with live.client(headers={"X-Forwarded-For": f"10.9.2.{i % 4}"}) as c:
            return c.post(
                "/api/v1/auth/login", json={"email": f"v{i}@acme.example", "password": "x"}
            ).status_code

    latencies = []
    with ThreadPoolExecutor(40) as pool, live.client("b_admin") as b:
        flood = [pool.submit(guess, i) for i in range(120)]
        while not all(f.done() for f in flood):
            start = time.perf_counter()
            assert b.get("/api/v1/sites").status_code == 200
            latencies.append(time.perf_counter() - start)
        codes = [f.result() for f in flood]
    assert set(codes) <= {401, 429}, codes
    assert 429 in codes
    # Loose bounds: the CI box has 2 shared cores. Before the fix the worst read took 15 s.
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.5, (
        f"median read during the flood {latencies[len(latencies) // 2]:.2f} s"
    )
    assert latencies[-1] < 5.0, f"slowest read during the flood {latencies[-1]:.2f} s"


# -------------------------------------------------------------- 3: streams hold no connection
def test_open_streams_are_capped_and_hold_no_database_connection(live: Live) -> None:
    with live.client("a_engineer") as eng:
        job = eng.post("/api/v1/jobs", json={"kind": "probe", "seconds": 0}).json()["id"]  # stays queued
    statuses = []
    with ExitStack() as stack:
        viewer = stack.enter_context(live.client("a_viewer"))
        for _ in range(10):
            r = stack.enter_context(viewer.stream("GET", f"/api/v1/jobs/{job}/events?timeout=30&poll=0.2"))
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) > 0
        assert statuses.count(200) == 6 and statuses.count(429) == 4, statuses
        if live.db.is_postgres:
            name = live.db.engine.url.database
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as pg:
                sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state LIKE 'idle in tr%%'"
                held = pg.execute(sql, (name,)).fetchone()
            assert held is not None and held[0] == 0, f"{held[0]} connections held by idle streams"
        with live.client("b_admin") as other:
            for i in range(10):
                start = time.perf_counter()
                r = other.post("/api/v1/sites", json={"name": f"during streams {uuid.uuid4().hex[:6]} {i}"})
                assert r.status_code == 201, r.text
                assert other.get(f"/api/v1/sites/{r.json()['id']}").status_code == 200
                assert time.perf_counter() - start < 2.0
    # closed streams give their slots back
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            live.client("a_viewer") as viewer,
            viewer.stream("GET", f"/api/v1/jobs/{job}/events?timeout=0") as r,
        ):
            if r.status_code == 200:
                break
        time.sleep(0.5)
    assert r.status_code == 200


# -------------------------------------------------------------- 6: small files, huge memory
def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _parquet(table: pa.Table, **kwargs: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)  # type: ignore[arg-type]
    return sink.getvalue()


def test_small_files_that_decode_huge_are_refused_before_decoding(live: Live) -> None:
    if live.db.is_postgres:
        pytest.skip("file limits do not depend on the metadata database; checked on SQLite")
    n = 2_000_000
    long_text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array(["x" * 2000]))
    bombs = {
        "strings.parquet": _parquet(pa.table({"t": long_text}), compression="zstd"),
        "plain.parquet": _parquet(pa.table({"t": long_text}), compression="zstd", store_schema=False),
        "wide.parquet": _parquet(pa.table({f"c{i}": [1.0] for i in range(3000)})),
        "wide.csv": (",".join(f"c{i}" for i in range(100_000)) + "\n").encode(),
    }
    image = io.BytesIO()
    Image.new("1", (13_000, 13_000)).save(image, format="PNG")  # 169 MP: a decompression bomb
    bombs["bomb.png"] = image.getvalue()
    before = _peak_rss_mb(live.proc.pid)
    with live.client("a_engineer") as c:
        for name, raw in bombs.items():
            assert len(raw) < 2_000_000, (name, len(raw))
            started = time.perf_counter()
            r = c.post("/api/v1/uploads", files={"file": (name, raw)})
            assert r.status_code == 413, f"{name}: {r.status_code} {r.text}"
            error = r.json()["error"]
            assert error["code"] == "payload_too_large" and name in error["message"], error
            assert time.perf_counter() - started < 10, name
        dup = c.post("/api/v1/uploads", files={"file": ("dup.csv", b"time,temp,temp\n2024-01-01,1,2\n")})
        assert dup.status_code == 422 and "temp" in dup.text and "twice" in dup.text, dup.text
        for name in ("..", "../..", "a/../..", ".csv"):
            r = c.post("/api/v1/uploads", files={"file": (name, b"a,b\n1,2\n")}, data={"kind": "table"})
            assert r.status_code == 201, f"{name!r}: {r.status_code} {r.text}"
            assert "/" not in r.json()["filename"] and not r.json()["filename"].startswith(".")
    grown = _peak_rss_mb(live.proc.pid) - before
    assert grown < 400, f"server peak memory grew {grown:.0f} MB on refused uploads"


# -------------------------------------------------------------- 9: concurrent first writes
def test_concurrent_first_writes_of_a_new_signal_all_succeed(live: Live) -> None:
    with live.client("a_engineer") as c:
        site = c.post("/api/v1/sites", json={"name": f"race site {uuid.uuid4().hex[:6]}"}).json()["id"]
        asset = c.post(
            "/api/v1/assets", json={"site_id": site, "name": f"race {uuid.uuid4().hex[:6]}"}
        ).json()["id"]
    signal = f"new_{uuid.uuid4().hex[:6]}"

    def write(i: int) -> int:
        reading = {
            "time": f"2024-05-{i + 1:02d}T00:00:00Z",
            "signal": signal,
            "value": float(i),
        }  # own partitions
        with live.client("a_ingest") as gw:
            return gw.post(f"/api/v1/assets/{asset}/readings", json={"readings": [reading]}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(write, range(16)))
    assert codes == [201] * 16, codes
    with live.client("a_engineer") as c:
        names = [s["name"] for s in c.get("/api/v1/signals", params={"asset_id": asset}).json()["items"]]
    assert names == [signal]
