"""OEE through the API, and the industrial-complex view: consent, suppression under 3 companies,
withdrawal taking effect at once, anonymous standing, and no raw data or unconsented names."""

from __future__ import annotations

from pathlib import Path

import pytest

from _api_helpers import PASSWORD, Hub, make_hub
from axhub.api import bootstrap

DAY = ("2026-03-02T00:00:00+09:00", "2026-03-03T00:00:00+09:00")
COMPANIES = {  # slug: (minutes down, good parts, company name)
    "acme": (144, 1000, "acme"),  # acme and beta come from make_hub, named by their slugs
    "beta": (288, 900, "beta"),
    "gamma": (72, 1200, "Gamma Valves"),
    "delta": (0, 1300, "Delta Pumps"),
}


def _t(hours: float) -> str:
    h, m = int(hours), round((hours - int(hours)) * 60)
    return f"2026-03-02T{h:02d}:{m:02d}:00+09:00"


def _setup_company(hub: Hub, slug: str, down_min: int, good: int) -> dict[str, str]:
    with hub.client(f"{slug}_admin") as c:
        site = c.post("/api/v1/sites", json={"name": f"{slug} plant"}).json()["id"]
        asset = c.post(
            "/api/v1/assets", json={"site_id": site, "name": f"{slug}-secret-press", "kind": "cnc"}
        )
        asset_id = asset.json()["id"]
        r = c.put(
            f"/api/v1/assets/{asset_id}/production",
            json={"state_source": "tag", "state_signal": "state", "ideal_cycle_s": 60},
        )
        assert r.status_code == 200, r.text
        readings = [{"time": _t(0), "signal": "state", "value": 1}]
        if down_min:
            readings += [
                {"time": _t(10), "signal": "state", "value": 0},
                {"time": _t(10 + down_min / 60), "signal": "state", "value": 1},
            ]
        r = c.post(f"/api/v1/assets/{asset_id}/readings", json={"readings": readings})
        assert r.status_code in (200, 201), r.text
        r = c.post(
            f"/api/v1/assets/{asset_id}/counts",
            json={"counts": [{"ts": _t(12), "good": good, "scrap": 10}]},
        )
        assert r.status_code == 201, r.text
        if down_min:
            r = c.post(
                f"/api/v1/assets/{asset_id}/downtime-reasons",
                json={
                    "start": _t(10),
                    "end": _t(10 + down_min / 60),
                    "reason": "breakdown",
                    "note": f"{slug} note",
                },
            )
            assert r.status_code == 201, r.text
    return {"site": site, "asset": asset_id}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    home: Path = tmp_path_factory.mktemp("oee")
    hub = make_hub(home, f"sqlite:///{home / 'meta.db'}")
    for slug, (_, _, name) in COMPANIES.items():
        if f"{slug}_admin" not in hub.keys:
            user = bootstrap.create_user(
                hub.db, slug, f"admin@{slug}.example", PASSWORD, "admin", org_name=name
            )
            hub.keys[f"{slug}_admin"] = bootstrap.create_key(
                hub.db, user, "k", ["read", "write", "ingest", "admin"]
            )
    hub.ids = {slug: _setup_company(hub, slug, down, good) for slug, (down, good, _) in COMPANIES.items()}  # type: ignore[attr-defined]
    return hub


def test_machine_oee_over_the_api_matches_hand_computation(hub: Hub) -> None:
    asset = hub.ids["acme"]["asset"]  # type: ignore[attr-defined]
    with hub.client("acme_admin") as c:
        r = c.get("/api/v1/oee", params={"level": "machine", "id": asset, "start": DAY[0], "end": DAY[1]})
        assert r.status_code == 200, r.text
        body = r.json()
    total = body["total"]
    # Planned around the clock (no shifts): PBT 1440 min; 144 min down -> APT 1296 min.
    assert total["planned_busy_s"] == 1440 * 60
    assert total["availability"] == pytest.approx(1296 / 1440)
    assert total["performance"] == pytest.approx(1010 / 1296)
    assert total["quality"] == pytest.approx(1000 / 1010)
    assert total["oee"] == pytest.approx(1000 / 1440)
    assert body["by_period"][0]["key"] == "2026-03-02"
    losses = {row["cause"]: row["seconds"] for row in body["losses"]}
    assert losses == {"breakdown": 144 * 60, "speed": pytest.approx((1296 - 1010) * 60), "scrap": 600}
    assert body["losses"][0]["cause"] == "speed"  # largest first
    r = c.get("/api/v1/oee", params={"level": "machine", "id": asset, "start": DAY[1], "end": DAY[0]})
    assert r.status_code == 422


def test_complex_view_needs_three_consenting_companies_and_forgets_a_withdrawal(hub: Hub) -> None:
    params = {"start": DAY[0], "end": DAY[1]}
    with hub.client("operator") as ops:
        assert ops.get("/api/v1/platform/complex", params=params).json()["suppressed"] is True
        for slug in ("acme", "beta"):
            with hub.client(f"{slug}_admin") as c:
                assert c.put("/api/v1/complex/consent", json={"named": slug == "acme"}).json()["consented"]
        view = ops.get("/api/v1/platform/complex", params=params).json()
        assert view["suppressed"] is True and "oee" not in view  # two companies: nothing shown
        with hub.client("gamma_admin") as c:
            c.put("/api/v1/complex/consent", json={"named": False})
        view = ops.get("/api/v1/platform/complex", params=params).json()
        assert view["suppressed"] is False and view["companies"] == 3
        expected = sorted([1000 / 1440, 900 / 1440, 1200 / 1440])
        assert view["oee"]["median"] == pytest.approx(expected[1])
        # Breakdown downtime came from acme and beta only (gamma's 72 min too): 3 companies -> shown.
        causes = {row["key"]: row for row in view["downtime_by_cause"]}
        assert causes["breakdown"]["suppressed"] is False
        assert causes["breakdown"]["value"] == pytest.approx((144 + 288 + 72) * 60)
        # Only the company that agreed is named; no raw data, notes or machine names leave a company.
        with hub.client("acme_admin") as c:
            acme_name = c.get("/api/v1/org").json()["name"]
        assert view["named"] == [{"name": acme_name, "oee": pytest.approx(1000 / 1440)}]
        text = ops.get("/api/v1/platform/complex", params=params).text
        for leak in ("beta", "Gamma Valves", "gamma", "secret-press", "note"):
            assert leak not in text
        with hub.client("gamma_admin") as c:
            assert c.delete("/api/v1/complex/consent").json()["consented"] is False
        view = ops.get("/api/v1/platform/complex", params=params).json()
        assert view["suppressed"] is True and view["companies"] == 2
        assert "Gamma" not in ops.get("/api/v1/platform/complex", params=params).text


def test_a_cell_with_fewer_than_three_companies_is_suppressed(hub: Hub) -> None:
    params = {"start": DAY[0], "end": DAY[1]}
    for slug in ("acme", "beta", "delta"):  # delta never stopped: breakdown rests on acme and beta only
        with hub.client(f"{slug}_admin") as c:
            c.put("/api/v1/complex/consent", json={"named": False})
    with hub.client("operator") as ops:
        view = ops.get("/api/v1/platform/complex", params=params).json()
    assert view["companies"] == 3
    breakdown = next(r for r in view["downtime_by_cause"] if r["key"] == "breakdown")
    assert breakdown == {"key": "breakdown", "value": None, "companies": None, "suppressed": True}


def test_standing_is_anonymous_and_only_for_consenting_companies(hub: Hub) -> None:
    params = {"start": DAY[0], "end": DAY[1]}
    with hub.client("delta_admin") as c:
        c.put("/api/v1/complex/consent", json={"named": False})
        standing = c.get("/api/v1/complex/standing", params=params).json()
    assert standing["consented"] is True and standing["suppressed"] is False
    assert standing["oee"] == pytest.approx(1300 / 1440)
    assert standing["percentile"] > 50
    assert set(standing) == {"consented", "suppressed", "oee", "percentile", "companies"}
    with hub.client("gamma_admin") as c:
        assert c.get("/api/v1/complex/standing", params=params).json() == {
            "consented": False,
            "suppressed": True,
        }
    with hub.client("acme_admin") as c:  # company users never reach the operator's view
        assert c.get("/api/v1/platform/complex", params=params).status_code == 403
