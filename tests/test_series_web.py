"""Deleting stored readings from the dashboard (administrators), in Chromium, Korean and English;
and the deletion routes' rights over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from _api_helpers import Hub, make_hub
from _browser import CHROMIUM, chromium, sign_in
from axhub.store.models import AssetRow, SignalRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore
from test_web_dashboard import (
    PASSWORD,
    Seeded,
    Server,
    build_app,
    home,
    new_page,
    seed,
)


# ------------------------------------------------------------------------------------- API
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    path = tmp_path_factory.mktemp("series-api")
    return make_hub(path, f"sqlite:///{path / 'meta.db'}")


def _machine(c: Any, name: str) -> tuple[str, str, str]:
    site = c.post("/api/v1/sites", json={"name": f"site {name}"}).json()["id"]
    asset = c.post("/api/v1/assets", json={"site_id": site, "name": name}).json()["id"]
    readings = [
        {"time": f"2026-03-0{d}T0{h}:00:00+09:00", "signal": sig, "value": d * 10 + h}
        for d in (1, 2)
        for h in range(5)
        for sig in ("온도", "진동")
    ]
    r = c.post(f"/api/v1/assets/{asset}/readings", json={"readings": readings})
    assert r.status_code == 201, r.text
    signals = {
        s["name"]: s["id"] for s in c.get("/api/v1/signals", params={"asset_id": asset}).json()["items"]
    }
    return site, asset, signals["온도"]


def _points(c: Any, asset: str) -> dict[str, int]:
    window = {"start": "2026-02-28T00:00:00Z", "end": "2026-03-05T00:00:00Z"}
    r = c.get(f"/api/v1/assets/{asset}/readings", params=window)
    assert r.status_code == 200, r.text
    return {s["signal"]: len(s["times"]) for s in r.json()["series"] if s["times"]}


def test_only_an_admin_of_the_company_deletes_readings(api: Hub) -> None:
    with api.client("a_admin") as admin:
        _, asset, temp = _machine(admin, "Press 7")
    for who, code in (("a_engineer", 403), ("a_viewer", 403), ("b_admin", 404)):
        with api.client(who) as c:
            assert c.delete(f"/api/v1/signals/{temp}/readings").status_code == code, who
            assert c.delete(f"/api/v1/assets/{asset}/readings").status_code == code, who
    with api.client("a_admin") as admin:
        r = admin.delete(f"/api/v1/signals/{temp}/readings")
        assert r.status_code == 200 and r.json() == {"id": temp, "rows": 10}
        assert _points(admin, asset) == {"진동": 10}
        assert admin.get(f"/api/v1/signals/{temp}").status_code == 200  # the signal stays
        assert admin.delete(f"/api/v1/assets/{asset}/readings").json()["rows"] == 10
        assert _points(admin, asset) == {}


def test_a_new_machine_with_a_deleted_ones_name_starts_empty(api: Hub) -> None:
    with api.client("a_admin") as admin:
        site, asset, temp = _machine(admin, "Lathe 9")
        assert admin.delete(f"/api/v1/signals/{temp}").status_code == 200  # with its readings
        again = admin.post("/api/v1/signals", json={"asset_id": asset, "name": "온도"}).json()["id"]
        assert _points(admin, asset) == {"진동": 10}
        assert again != temp
        assert admin.delete(f"/api/v1/assets/{asset}").status_code == 200
        new = admin.post("/api/v1/assets", json={"site_id": site, "name": "Lathe 9"}).json()["id"]
        assert _points(admin, new) == {}


# ------------------------------------------------------------------------------------- web
@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded, Any]]:
    settings = home(tmp_path_factory.mktemp("series-web"))
    seeded = seed(settings)
    with Server(build_app(settings)) as server:
        yield server.url, seeded, settings


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium not found at {CHROMIUM}")
    with chromium() as b:
        yield b


def _sign_in(page: Any, email: str, path: str) -> None:
    sign_in(page, email, PASSWORD, path)


def _stored(settings: Any, org: str, slug: str) -> set[str]:
    return set(TimeSeriesStore(settings.timeseries_root).query(org, slug)["signal"])


@pytest.mark.browser
def test_admin_deletes_a_signal_then_the_machine_in_korean(
    browser: Any, web: tuple[str, Seeded, Any]
) -> None:
    base, seeded, settings = web
    slug = seeded.asset_slug
    before = _stored(settings, seeded.org_a, slug)
    assert len(before) >= 2, before
    page = new_page(browser, base, locale="ko-KR")
    _sign_in(page, "admin@hanbit.example", f"/assets/{slug}")
    card = page.locator("#series-delete")
    assert card.is_visible()
    words = " ".join(card.locator("h2, p, label, button, option[value='']").all_inner_texts())
    assert "데이터 삭제" in words and not re.search(r"[A-Za-z]", words), words  # signal names are data
    questions: list[str] = []
    page.on("dialog", lambda d: (questions.append(d.message), d.accept()))
    from axhub.store.db import Database

    db = Database(settings.database_url)
    with db.session() as s:
        scope = OrgScope(s, seeded.org_a)
        asset = scope.find(AssetRow, slug=slug)
        assert asset is not None
        victim = sorted(before)[0]
        signal = scope.find(SignalRow, asset_id=asset.id, name=victim)
        assert signal is not None
        signal_id = signal.id
    card.locator("select").select_option(signal_id)
    card.get_by_role("button").click()
    page.wait_for_function("() => !document.getElementById('toast').hidden")
    assert "지울까요" in questions[0]
    assert "지웠습니다" in page.locator("#toast").inner_text()
    assert _stored(settings, seeded.org_a, slug) == before - {victim}
    page.wait_for_load_state("load")
    page.goto(f"/assets/{slug}")
    page.locator("#series-delete select").select_option("")
    page.locator("#series-delete").get_by_role("button").click()
    page.wait_for_function("() => !document.getElementById('toast').hidden")
    assert _stored(settings, seeded.org_a, slug) == set()
    db.dispose()


@pytest.mark.browser
def test_an_engineer_sees_no_delete_action_in_english(browser: Any, web: tuple[str, Seeded, Any]) -> None:
    base, seeded, _ = web
    page = new_page(browser, base, locale="en-US")
    _sign_in(page, "kim@hanbit.example", f"/assets/{seeded.asset_slug}")
    assert page.locator("#series-delete").count() == 0
    admin = new_page(browser, base, locale="en-US")
    _sign_in(admin, "admin@hanbit.example", f"/assets/{seeded.asset_slug}")
    text = admin.locator("#series-delete").inner_text()
    assert "Delete stored readings" in text and not re.search(r"[가-힣]", text)
