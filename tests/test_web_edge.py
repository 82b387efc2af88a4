"""The fleet page in Debian's Chromium: devices with their buffer and bundle, a token issued from
the page, a device revoked from it; Korean page without English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from _browser import CHROMIUM, chromium
from axhub.api.security import hash_password
from axhub.core.settings import Settings
from axhub.edge.buffer import RESULTS_KIND, encode_events
from axhub.fleet import service
from axhub.store.db import Database
from axhub.store.models import UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from test_web_dashboard import (
    KOREAN_PAGE_LATIN,
    LATIN_WORDS_JS,
    PASSWORD,
    Server,
    build_app,
    login,
    new_page,
    shot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(home=Path(tmp_path_factory.mktemp("edgeweb")) / "home")
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org = create_org(s, "Hanbit Precision", "hanbit")
        scope = OrgScope(s, org.id)
        scope.add(
            UserRow(
                email="admin@hanbit.example",
                name="관리자",
                password_hash=hash_password(PASSWORD),
                role="admin",
            )
        )
        now = datetime.now(UTC)
        for name in ("프레스 1 게이트웨이", "프레스 2 게이트웨이"):
            token, _ = service.issue_token(scope, name, "프레스 라인", created_by=None)
            enrolled = service.enrol(s, token, name, "0.1.0")
            _scope, device, state = service.device_for(s, enrolled["credential"])
            service.heartbeat(
                scope,
                device,
                state,
                {
                    "agent_version": "0.1.0",
                    "buffer": {"total": 1234},
                    "cpu_percent": 2.5,
                    "rss_mb": 96.0,
                    "counters": {"dropped_readings": 0},
                    "bundle": {"sha256": None},
                },
            )
            if name == "프레스 1 게이트웨이":  # its camera: 3 parts inspected this hour, 1 flagged
                results = [
                    {"id": f"einsp_{i}", "ts": now.isoformat(), "asset": "press-1", "file": f"{i}.png"}
                    | {"defect": i == 0}
                    for i in range(3)
                ]
                service.receive_batch(
                    scope,
                    device,
                    state,
                    batch_id="b1",
                    kind=RESULTS_KIND,
                    payload=encode_events(results),
                    timeseries=None,
                )
    with Server(build_app(settings)) as server:
        yield server.url
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(["--headless", "--no-sandbox", "--disable-gpu"]) as b:
        yield b


def test_fleet_page_issues_a_token_and_revokes_a_device(browser: Any, hub: str) -> None:
    page = new_page(browser, hub)
    login(page, "admin@hanbit.example", next_path="/edge")
    rows = page.locator("#edge-devices tbody tr")
    assert rows.count() == 2
    first = rows.filter(has_text="프레스 1 게이트웨이")
    assert "online" in first.locator(".device-state").inner_text()
    assert "1234" in first.inner_text() and "96" in first.inner_text()
    assert first.locator(".device-inspected").inner_text() == "3"
    assert first.locator(".device-flagged").inner_text() == "1"
    second = rows.filter(has_text="프레스 2 게이트웨이")
    assert second.locator(".device-inspected").inner_text() == "0"
    assert page.locator("#edge-devices th", has_text="Flagged (24 h)").count() == 1

    page.get_by_label("Device name").fill("프레스 3 게이트웨이")
    page.get_by_role("button", name="Issue token").click()
    token = page.locator("#edge-token-value")
    token.wait_for()
    assert re.fullmatch(r"axt_[A-Za-z0-9_-]{20,}", token.inner_text())
    shot(page, "edge-fleet", docs=True)

    from playwright.sync_api import expect

    first.get_by_role("button", name="Revoke").click()
    state = page.locator("#edge-devices tbody tr", has_text="프레스 1 게이트웨이").locator(".device-state")
    expect(state).to_contain_text("revoked", timeout=15_000)
    assert "online" in page.locator("#edge-devices tbody tr", has_text="프레스 2 게이트웨이").inner_text()
    page.context.close()


def test_korean_fleet_page_has_no_english(browser: Any, hub: str) -> None:
    page = new_page(browser, hub, locale="ko-KR")
    login(page, "admin@hanbit.example", next_path="/edge")
    page.wait_for_timeout(300)
    assert page.locator("h1").inner_text() == "엣지 장치"
    assert page.locator("#edge-devices th", has_text="불량 판정 (24시간)").count() == 1
    words = page.evaluate(LATIN_WORDS_JS)
    bad = sorted({w for w, _ctx in words if w not in KOREAN_PAGE_LATIN})
    assert bad == [], bad
    page.context.close()
