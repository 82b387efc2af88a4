"""The performance pages in Debian's Chromium: OEE and its losses per line, downtime reasons entered
on a tablet, consent to the industrial complex, and the operator's complex view with suppression."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from _browser import CHROMIUM
from axhub.api.security import hash_password
from axhub.core.readings import READINGS_SCHEMA
from axhub.core.settings import Settings
from axhub.core.timeutil import utcnow
from axhub.production.config import configure_machine, set_shifts
from axhub.sim.production import ProductionSpec, simulate_production
from axhub.store.db import Database
from axhub.store.models import AssetRow, ComplexConsentRow, UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore
from test_web_dashboard import PASSWORD, Server, build_app, login, new_page, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}"),
]


def _company(db: Database, store: TimeSeriesStore, name: str, slug: str, seed: int, *, consent: bool) -> None:
    start = pd.Timestamp(utcnow()).tz_convert("Asia/Seoul").floor("D") - pd.Timedelta(days=3)
    run = simulate_production(["press-1", "press-2"], start, 4, seed=seed, spec=ProductionSpec())
    now = pd.Timestamp(utcnow())
    with db.session() as s:
        org = create_org(s, name, slug)
        scope = OrgScope(s, org.id)
        for role in ("engineer", "admin"):
            scope.add(
                UserRow(
                    email=f"{role}@{slug}.example",
                    name=role,
                    password_hash=hash_password(PASSWORD),
                    role=role,
                )
            )
        site = scope.ensure_site(f"{name} plant", timezone="Asia/Seoul")
        line = scope.add(AssetRow(site_id=site.id, name="Press line", slug="press-line", kind="line"))
        set_shifts(
            scope,
            site,
            [
                {"name": "A", "start": "06:00", "end": "14:00"},
                {"name": "B", "start": "14:00", "end": "22:00"},
            ],
        )
        for machine, frame in run.readings.items():
            asset = scope.ensure_asset(site, f"Press {machine[-1]}", slug=machine, kind="other")
            asset.parent_id = line.id
            configure_machine(
                scope,
                asset,
                {
                    "state_source": "tag",
                    "state_signal": "state",
                    "good_signal": "good_count",
                    "scrap_signal": "scrap_count",
                },
            )
            sent = frame[frame["ts"] < now]
            store.write(
                org.id,
                pa.table(
                    {
                        "asset": [machine] * len(sent),
                        "signal": sent["signal"].tolist(),
                        "ts": pa.array(sent["ts"], READINGS_SCHEMA.field("ts").type),
                        "value": sent["value"].to_numpy(dtype=float),
                        "quality": pa.array([0] * len(sent), pa.uint8()),
                    },
                    schema=READINGS_SCHEMA,
                ),
            )
        if consent:
            scope.add(ComplexConsentRow(named=False))
        s.commit()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(home=Path(tmp_path_factory.mktemp("perf")) / "home")
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    store = TimeSeriesStore(settings.timeseries_root)
    _company(db, store, "Hanbit Precision", "hanbit", 1, consent=False)
    _company(db, store, "Seoul Forging", "forge", 2, consent=True)
    _company(db, store, "Gimhae Moulds", "moulds", 3, consent=True)
    with db.session() as s:
        platform = create_org(s, "Gyeongnam AI Data Center", "datacenter")
        OrgScope(s, platform.id).add(
            UserRow(
                email="ops@datacenter.example",
                name="ops",
                password_hash=hash_password(PASSWORD),
                role="operator",
            )
        )
        s.commit()
    db.dispose()
    with Server(build_app(settings)) as server:
        yield server.url


LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
ALLOWED_LATIN = {
    "Hub",
    "OEE",
    "PLC",
    "Press",
    "line",
    "Hanbit",
    "Precision",
    "plant",
    "engineer",
    "admin",
    "press",
}


def test_oee_page_in_korean_with_reasons_entered_on_a_tablet(browser: Any, hub: str) -> None:
    page = new_page(browser, hub, locale="ko-KR")
    login(page, "engineer@hanbit.example", next_path="/performance")
    kpi = page.locator("#kpi-oee").inner_text()
    assert re.search(r"\d+(\.\d)?\s*%", kpi), kpi
    page.wait_for_selector("#oee-chart .main-svg")
    page.wait_for_selector("#loss-chart .main-svg")
    losses = page.locator("#loss-table .loss-label").all_inner_texts()
    assert "속도 저하(성능 손실)" in losses and all(re.search("[가-힣]", x) for x in losses), losses
    words = set(LATIN_WORD.findall(page.locator("main").inner_text())) - ALLOWED_LATIN
    assert not words, f"English on the Korean page: {sorted(words)}"
    shot(page, "performance-ko")

    # The shop floor: a tablet, large buttons, one tap per stop.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.goto("/performance/downtime?machine=press-1")
    first = page.locator("#stops li").first
    first.get_by_role("button", name="공구 교체").click()
    page.wait_for_selector("#stops li .reason-given")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "downtime-tablet")
    page.reload()
    assert page.locator("#stops li").first.locator(".reason-given").inner_text() == "공구 교체"
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto("/performance?line=press-line")
    assert "공구 교체" in page.locator("#loss-table").inner_text()
    # Shifts are set from the page too (a night shift across midnight).
    shifts = page.locator("form.shift-form input[name=shifts]")
    assert shifts.input_value() == "A=06:00-14:00, B=14:00-22:00"
    shifts.fill("A=06:00-14:00, B=14:00-22:00, C=22:00-06:00")
    page.locator("form.shift-form button").click()
    page.wait_for_selector("#toast:not([hidden])")
    page.reload()
    assert page.locator("form.shift-form input[name=shifts]").input_value().endswith("C=22:00-06:00")
    page.goto("/")
    assert "%" in page.locator("#kpi-oee").inner_text()  # the overview's OEE card
    page.context.close()


def test_consent_then_the_operator_sees_aggregates_only(browser: Any, hub: str) -> None:
    ops = new_page(browser, hub)
    login(ops, "ops@datacenter.example", next_path="/complex")
    assert ops.locator("#complex-companies").inner_text() == "2"
    assert "Fewer than 3 companies" in ops.locator("main").inner_text()
    admin = new_page(browser, hub)
    login(admin, "admin@hanbit.example", next_path="/performance")
    admin.get_by_label("My company may be named").check()
    admin.get_by_role("button", name="Take part").click()
    admin.wait_for_selector("text=Taking part since")
    admin.reload()
    assert "Your OEE is higher than" in admin.locator("#standing").inner_text()
    ops.reload()
    text = ops.locator("main").inner_text()
    assert ops.locator("#complex-companies").inner_text() == "3"
    assert "Median" in text and "Hanbit Precision" in ops.locator("#complex-named").inner_text()
    for hidden in ("Seoul Forging", "Gimhae Moulds", "Press 1", "press-1"):
        assert hidden not in text
    shot(ops, "complex")
    admin.goto("/performance")
    admin.get_by_role("button", name="Withdraw").click()
    admin.wait_for_selector("text=Not taking part.")
    ops.reload()
    assert ops.locator("#complex-companies").inner_text() == "2"
    assert "Hanbit" not in ops.locator("main").inner_text()
    ops.context.close()
    admin.context.close()
