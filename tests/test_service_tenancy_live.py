"""Issue 12 leftovers against real uvicorn servers: no cross-company enumeration (sign-in names
per company, share codes instead of slugs) and one sign-in limit across several API processes."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from _api_helpers import PASSWORD
from _live import Live, free_port, live_server
from axhub.api.login_guard import SharedLoginGuard
from axhub.store.db import Database

ACME_OWN = "acme-own-secret-77"  # acme's accounts' password, unlike beta's (PASSWORD)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("tenancy")
    with live_server(home, f"sqlite:///{home / 'meta.db'}") as server:
        yield server


def _create(
    admin: httpx.Client, email: str, password: str = PASSWORD
) -> tuple[int, float, dict[str, object]]:
    start = time.perf_counter()
    r = admin.post("/api/v1/users", json={"email": email, "password": password, "role": "viewer"})
    return r.status_code, time.perf_counter() - start, r.json()


def test_creating_a_user_does_not_tell_whether_the_email_is_used_elsewhere(live: Live) -> None:
    taken_elsewhere = ["b_admin@beta.example", "ops@platform.example", "A_ENGINEER@acme.example".lower()]
    with live.client("a_admin") as admin:
        # a_engineer is *this* company's: that conflict is acme's own business
        assert _create(admin, taken_elsewhere.pop())[0] == 409
        foreign = [_create(admin, e, ACME_OWN) for e in taken_elsewhere]
        fresh = [_create(admin, f"new{uuid.uuid4().hex[:6]}@acme.example", ACME_OWN) for _ in range(2)]
    assert [f[0] for f in foreign] == [201, 201] and [f[0] for f in fresh] == [201, 201]
    assert sorted(foreign[0][2]) == sorted(fresh[0][2])  # same shape of answer
    # same work either way (the old 409 came before hashing: ~100x faster than a 201)
    ratio = statistics.median(f[1] for f in foreign) / statistics.median(f[1] for f in fresh)
    assert 0.3 < ratio < 3.0, ratio


def test_each_account_of_one_email_signs_in_with_its_own_password(live: Live) -> None:
    email = "b_admin@beta.example"  # beta's admin; acme now gets an account with the same e-mail
    with live.client("a_admin") as admin:
        code, _, _ = _create(admin, email, ACME_OWN)
        assert code in (201, 409)  # 409 when the previous test already made it
    addr = {"X-Forwarded-For": "10.77.0.1"}
    with live.client(headers=addr) as c:
        beta = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert beta.status_code == 200 and beta.json()["org"]["slug"] == "beta", beta.text
        acme = c.post("/api/v1/auth/login", json={"email": email, "password": ACME_OWN})
        assert acme.status_code == 200 and acme.json()["org"]["slug"] == "acme", acme.text
        named = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, "company": "beta"})
        assert named.status_code == 200 and named.json()["org"]["slug"] == "beta"
        # the company narrows the choice: beta's password does not open acme's account
        wrong = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, "company": "acme"})
        nowhere = c.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD, "company": "no-such"}
        )
        assert wrong.status_code == nowhere.status_code == 401
        assert wrong.json()["error"]["message"] == nowhere.json()["error"]["message"]


@pytest.fixture(scope="module")
def a_version(live: Live) -> str:
    from axhub.ml.base import Estimator
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.platform import org_by_slug
    from axhub.store.scoped import OrgScope

    cls = Estimator.lookup("anomaly", "mspc")
    model = cls(**cls.example_params()).fit(cls.example_data(0).train)
    bundle = model.save(live.home / "bundle", make_zip=True)
    with live.db.session() as s:
        scope = OrgScope(s, org_by_slug(s, "acme").id)
        return ModelRegistry(scope, BlobStore(live.home / "blobs")).register(bundle, name="shared-one").id


def test_sharing_answers_the_same_for_existing_and_missing_companies(live: Live, a_version: str) -> None:
    with live.client("b_admin") as b:
        beta_code = b.get("/api/v1/org").json()["share_code"]
        assert beta_code and beta_code.startswith("sh_")
        assert b.get("/api/v1/org").json()["share_code"] == beta_code  # stable
    with live.client("a_engineer") as a:
        url = f"/api/v1/models/{a_version}/shares"
        by_slug = [a.post(url, json={"org_slug": slug}) for slug in ("beta", "no-such-company")]
        assert [r.status_code for r in by_slug] == [422, 422]
        assert by_slug[0].json()["error"]["message"] == by_slug[1].json()["error"]["message"]
        guess = a.post(url, json={"share_code": "sh_guessed"})
        assert guess.status_code == 404 and "beta" not in guess.text
        ok = a.post(url, json={"share_code": beta_code})
        assert ok.status_code == 201, ok.text
    with live.client("b_admin") as b:
        assert [m["id"] for m in b.get("/api/v1/models/shared").json()] == [a_version]


def test_a_hub_can_require_the_company_at_sign_in(tmp_path: Path) -> None:
    """With the setting on, an e-mail alone signs in nowhere, so how long a sign-in takes or
    whether it works never depends on accounts of other companies."""
    from fastapi.testclient import TestClient

    from _api_helpers import create_accounts
    from axhub.api.main import create_app
    from axhub.core.settings import Settings

    settings = Settings(home=tmp_path, signin_requires_company=True)
    app = create_app(settings, executor="none")
    create_accounts(app.state.axhub.db)
    with TestClient(app, base_url="https://testserver") as c:
        body = {"email": "b_admin@beta.example", "password": PASSWORD}
        assert c.post("/api/v1/auth/login", json=body).status_code == 401
        ok = c.post("/api/v1/auth/login", json={**body, "company": "beta"})
        assert ok.status_code == 200 and ok.json()["org"]["slug"] == "beta"


# ------------------------------------------------------------ one limit across API processes
def test_two_guards_on_one_database_share_the_counts(tmp_path: Path) -> None:
    """Two processes' guards (same database): failures seen by either count for both."""
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate()
    first, second = SharedLoginGuard(db), SharedLoginGuard(db)
    for i in range(5):
        (first if i % 2 else second).failed("kim@acme.example", f"10.0.0.{i}")
    assert first.retry_after("kim@acme.example", "10.1.1.1") >= 1
    assert second.retry_after("Kim@Acme.example", "10.1.1.2") >= 1
    assert second.retry_after("lee@acme.example", "10.1.1.2") == 0  # another account is free
    second.succeeded("kim@acme.example")
    third = SharedLoginGuard(db)  # a fresh process sees the success too
    assert third.retry_after("kim@acme.example", "10.1.1.1") == 0
    db.dispose()


def _start_two_workers(live: Live) -> tuple[subprocess.Popen[bytes], str]:
    src = Path(__file__).resolve().parents[1] / "src"
    port = free_port()
    env = {
        "PYTHONPATH": str(src),
        "AXHUB_HOME": str(live.home),
        "AXHUB_DATABASE_URL": f"sqlite:///{live.home / 'meta.db'}",
        "AXHUB_SERVE_JOB_WORKERS": "0",
        "AXHUB_SERVE_SECURE_COOKIES": "0",
        "PATH": "/usr/bin:/bin",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "axhub.api.main:app_from_env", "--workers", "2"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("two-worker server did not start")


def _burst(url: str, email: str, password: str, net: str, n: int = 4) -> list[httpx.Response]:
    """n sign-ins at once, each on its own connection (so both workers get some)."""

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=30, headers={"X-Forwarded-For": f"{net}.{i}"}) as c:
            return c.post("/api/v1/auth/login", json={"email": email, "password": password})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.slow
def test_sign_in_limits_hold_across_two_uvicorn_workers(live: Live) -> None:
    email = f"t{uuid.uuid4().hex[:8]}@acme.example"
    with live.client("a_admin") as admin:
        assert _create(admin, email)[0] == 201
    proc, url = _start_two_workers(live)
    try:
        codes = []
        for i in range(5):  # a fresh connection each: the kernel spreads them over both workers
            with httpx.Client(base_url=url, timeout=30, headers={"X-Forwarded-For": f"10.66.0.{i}"}) as c:
                codes.append(
                    c.post("/api/v1/auth/login", json={"email": email, "password": "no"}).status_code
                )
        assert codes == [401] * 5, codes
        first = _burst(url, email, PASSWORD, "10.66.1")  # even the right password waits
        assert [r.status_code for r in first] == [429] * 4, [r.text for r in first]
        time.sleep(max(int(r.headers["Retry-After"]) for r in first) + 0.2)
        with httpx.Client(base_url=url, timeout=30, headers={"X-Forwarded-For": "10.66.0.9"}) as c:
            assert c.post("/api/v1/auth/login", json={"email": email, "password": "no"}).status_code == 401
        # the 6th failure doubled the wait for every worker: the count is one count
        second = _burst(url, email, PASSWORD, "10.66.2")
        assert [r.status_code for r in second] == [429] * 4
        assert min(int(r.headers["Retry-After"]) for r in second) == 2
        # per address as well: 20 free failures from one address in total, not per worker
        addr = {"X-Forwarded-For": "10.66.3.1"}
        spread = []
        for i in range(21):
            with httpx.Client(base_url=url, timeout=30, headers=addr) as c:
                body = {"email": f"x{i}-{uuid.uuid4().hex[:4]}@nowhere.example", "password": "no"}
                spread.append(c.post("/api/v1/auth/login", json=body).status_code)
        assert spread[:20] == [401] * 20 and spread[20] == 429, spread
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
