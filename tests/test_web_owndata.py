"""A new company's own plant in the dashboard (Debian's Chromium, Playwright): plant structure from
an empty organisation, the operator console, and Korean pages with no English on them.

One hub per module, served by uvicorn on a free loopback port (helpers shared with
``test_web_dashboard``); each test opens its own browser context.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from _browser import CHROMIUM
from axhub.api.security import hash_password
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.models import AssetRow, SignalRow, SiteRow, UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from test_web_dashboard import (
    PASSWORD,
    Server,
    _poll,
    build_app,
    home,
    login,
    new_page,
    shot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}; apt-get install chromium"
    ),
]


def seed_new_company(settings: Settings) -> dict[str, str]:
    """A company with nothing in it yet (an admin and an engineer), and the data center's operator."""
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org = create_org(s, "Saehan Press", "saehan")
        scope = OrgScope(s, org.id)
        for email, role in (("admin@saehan.example", "admin"), ("eng@saehan.example", "engineer")):
            scope.add(
                UserRow(email=email, name=role.title(), password_hash=hash_password(PASSWORD), role=role)
            )
        ops = create_org(s, "Gyeongnam AI Data Center", "dc")
        OrgScope(s, ops.id).add(
            UserRow(
                email="ops@dc.example", name="Ops", password_hash=hash_password(PASSWORD), role="operator"
            )
        )
        ids = {"org": org.id}
    db.dispose()
    return ids


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Settings]]:
    settings = home(tmp_path_factory.mktemp("owndata-web"))
    ids = seed_new_company(settings)
    with Server(build_app(settings)) as server:
        yield server.url, ids, settings


def rows(settings: Settings, model: Any, org_id: str) -> list[Any]:
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            found = list(OrgScope(s, org_id).list(model))
            s.expunge_all()
            return found
    finally:
        db.dispose()


def test_new_company_builds_its_plant(browser: Any, fresh: tuple[str, dict[str, str], Settings]) -> None:
    base, ids, settings = fresh
    page = new_page(browser, base, locale="ko-KR")
    login(page, "eng@saehan.example")
    # An empty company is led to its first machine, not shown an empty dashboard.
    onboarding = page.locator("#onboarding")
    assert "설비 등록" in onboarding.inner_text()
    onboarding.get_by_role("link", name="첫 설비 등록하기").click()
    page.wait_for_url(re.compile(r"/plant"))
    form = page.locator("#machine-form")
    assert form.get_by_label("사업장(공장) 이름").input_value() == "본 공장"
    assert form.get_by_label("시간대").input_value() == "Asia/Seoul"
    form.get_by_label("설비 아이디").fill("press-01")
    form.get_by_label("한국어 이름").fill("프레스 1호기")
    form.get_by_label("영어 이름").fill("Press No. 1")
    with page.expect_navigation(url=re.compile(r"created=press-01")):
        form.get_by_role("button", name="설비 등록").click()
    assert "press-01" in page.locator("#created-note").inner_text()
    shot(page, "plant-created-ko")
    [site] = rows(settings, SiteRow, ids["org"])
    assert (site.name_ko, site.timezone) == ("본 공장", "Asia/Seoul")
    [machine] = rows(settings, AssetRow, ids["org"])
    assert (machine.slug, machine.name_ko, machine.name_en, machine.site_id) == (
        "press-01",
        "프레스 1호기",
        "Press No. 1",
        site.id,
    )
    assert "프레스 1호기" in page.locator("#machine-press-01").inner_text()

    # A signal with Korean and English names over its stable id; then its limits are edited.
    details = page.locator("details", has_text="프레스 1호기의 이름과 신호")
    new_signal = details.locator("form[data-endpoint='/signals'][data-method='POST']")
    new_signal.get_by_label("신호 아이디").fill("oil_temp")
    new_signal.get_by_label("한국어 이름").fill("유압유 온도")
    new_signal.get_by_label("영어 이름").fill("Oil temperature")
    new_signal.get_by_label("단위").fill("°C")
    with page.expect_navigation():
        new_signal.get_by_role("button", name="신호 추가").click()
    row = page.locator("tr[data-signal='oil_temp']")
    row.get_by_label("상한 · oil_temp").fill("65.5")
    with page.expect_navigation():
        row.get_by_role("button", name="저장").click()
    [signal] = rows(settings, SignalRow, ids["org"])
    assert (signal.name, signal.name_ko, signal.unit, signal.high_limit) == (
        "oil_temp",
        "유압유 온도",
        "°C",
        65.5,
    )

    # The same id again: refused in Korean, naming nothing in English.
    page.goto("/plant")
    form = page.locator("#machine-form")
    form.get_by_label("설비 아이디").fill("press-01")
    form.get_by_label("한국어 이름").fill("중복")
    form.get_by_role("button", name="설비 등록").click()
    error = form.locator(".form-error")
    error.wait_for()
    assert "이미 쓰고 있는" in error.inner_text()
    assert not re.search(r"[A-Za-z]{3,}", error.inner_text()), error.inner_text()

    # The English page shows the English names over the same ids.
    page.get_by_role("link", name="EN").click()
    assert "Press No. 1" in page.locator("#machine-press-01").inner_text()
    page.goto("/")
    assert "Press No. 1" in page.locator("a.asset-tile").inner_text()
    page.context.close()


def test_viewer_cannot_edit_the_plant(browser: Any, fresh: tuple[str, dict[str, str], Settings]) -> None:
    base, ids, settings = fresh
    db = Database(settings.database_url)
    with db.session() as s:
        OrgScope(s, ids["org"]).add(
            UserRow(
                email="view@saehan.example", name="V", password_hash=hash_password(PASSWORD), role="viewer"
            )
        )
    db.dispose()
    page = new_page(browser, base)
    login(page, "view@saehan.example", next_path="/plant")
    assert page.get_by_role("heading", level=1).inner_text() == "Plant structure"
    assert page.locator("form.plant-form").count() == 0
    status = page.evaluate(
        "async () => (await fetch('/api/v1/sites', {method: 'POST', headers: {'X-CSRF-Token': AX.csrf(),"
        " 'Content-Type': 'application/json'}, body: JSON.stringify({name: 'x'})})).status"
    )
    assert status == 403
    page.context.close()


def test_operator_creates_a_company_and_sets_its_quota(
    browser: Any, fresh: tuple[str, dict[str, str], Settings]
) -> None:
    base, _, settings = fresh
    page = new_page(browser, base)
    login(page, "ops@dc.example", next_path="/operator")
    _poll(page, "document.getElementById('usage-chart').data !== undefined")
    # One bar series per company; the machines created by the other test's company show in the table.
    assert page.evaluate("document.getElementById('usage-chart').data.length") == 2
    form = page.locator("#org-form")
    form.get_by_label("Company").fill("Mirae Casting")
    form.get_by_label("Id").fill("mirae")
    form.get_by_label("First administrator's e-mail").fill("boss@mirae.example")
    form.get_by_label("Password (10+ characters)").fill(PASSWORD)
    form.get_by_label("Concurrent jobs allowed").fill("3")
    with page.expect_navigation():
        form.get_by_role("button", name="Create company and administrator").click()
    row = page.locator("tr[data-org='mirae']")
    assert "Mirae Casting" in row.inner_text()
    assert row.get_by_label("Concurrent jobs allowed · Mirae Casting").input_value() == "3"
    # Quota change, saved without leaving the page.
    row.get_by_label("Concurrent jobs allowed · Mirae Casting").fill("5")
    row.get_by_label("Compute class · Mirae Casting").select_option("gpu")
    with page.expect_response(lambda r: "/quota" in r.url and r.status == 200):
        row.get_by_role("button", name="Save quota").click()
    db = Database(settings.database_url)
    with db.session() as s:
        from axhub.store.platform import org_by_slug

        org = org_by_slug(s, "mirae")
        assert (org.max_concurrent_jobs, org.compute_class) == (5, "gpu")
    db.dispose()
    # Usage per day, switched to jobs.
    page.get_by_role("button", name="Jobs").click()
    assert page.locator("#usage-chart").get_attribute("data-measure") == "jobs"
    shot(page, "operator-console")
    page.context.close()
    # The new company's administrator signs in to an empty company, led to its first machine.
    page = new_page(browser, base)
    login(page, "boss@mirae.example")
    assert page.locator("#onboarding").is_visible()
    page.context.close()


def test_admin_adds_a_webhook_and_tests_it(browser: Any, fresh: tuple[str, dict[str, str], Settings]) -> None:
    import json as jsonlib
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(jsonlib.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base, _, _ = fresh
    page = new_page(browser, base, locale="ko-KR")
    login(page, "admin@saehan.example", next_path="/admin")
    form = page.locator("#channel-form")
    form.get_by_label("이름", exact=True).fill("정비팀 메신저")
    form.get_by_label("받는 곳").fill(f"http://127.0.0.1:{server.server_port}/hook")
    with page.expect_navigation():
        form.get_by_role("button", name="채널 추가").click()
    row = page.locator("#channel-table tbody tr", has_text="정비팀 메신저")
    with page.expect_response(lambda r: r.url.endswith("/test") and r.status == 200) as answer:
        row.get_by_role("button", name="시험 전송").click()
    assert answer.value.json()["ok"] is True
    assert len(received) == 1
    server.shutdown()
    page.context.close()


def test_engineer_sets_a_limit_rule(browser: Any, fresh: tuple[str, dict[str, str], Settings]) -> None:
    """A limit rule on a signal, from the machine page (the plant test made press-01 and oil_temp)."""
    from axhub.store.models import AlertRuleRow

    base, ids, settings = fresh
    page = new_page(browser, base, locale="ko-KR")
    login(page, "eng@saehan.example", next_path="/assets/press-01")
    form = page.locator("#rule-form")
    form.get_by_label("신호").select_option("oil_temp")
    form.get_by_label("상한").fill("70")
    form.get_by_label("심각도").select_option("critical")
    with page.expect_navigation():
        form.get_by_role("button", name="규칙 추가").click()
    row = page.locator("#rules-table tbody tr").first
    assert "유압유 온도" in row.inner_text() and "70 초과" in row.inner_text(), row.inner_text()
    [rule] = rows(settings, AlertRuleRow, ids["org"])
    assert (rule.signal, rule.kind, rule.high, rule.low, rule.severity) == (
        "oil_temp",
        "limit",
        70.0,
        None,
        "critical",
    )
    # A rule with no limit at all is refused in Korean, on the form.
    form = page.locator("#rule-form")
    form.get_by_role("button", name="규칙 추가").click()
    error = form.locator(".form-error")
    error.wait_for()
    assert re.search("[가-힣]", error.inner_text()) and not re.search(r"[A-Za-z]{3,}", error.inner_text())
    page.context.close()


def test_marked_events_show_on_the_machine_chart(
    browser: Any, fresh: tuple[str, dict[str, str], Settings]
) -> None:
    base, ids, settings = fresh
    [machine] = [a for a in rows(settings, AssetRow, ids["org"]) if a.slug == "press-01"]
    page = new_page(browser, base, locale="ko-KR")
    login(page, "eng@saehan.example", next_path="/assets/press-01")
    # Marked in the form under the machine's models (the same API the backtest reads).
    page.locator("#event-box summary").click()
    form = page.locator("#event-form")
    form.get_by_label("시각").fill("2026-03-03T11:00")
    form.get_by_label("종류").select_option("maintenance")
    form.get_by_label("내용").fill("베어링 교체")
    with page.expect_response(
        lambda r: r.url.endswith(f"/assets/{machine.id}/events") and r.status == 201
    ) as made:
        form.get_by_role("button", name="사건 추가").click()
    # Entered as Changwon wall-clock time: stored as 02:00 UTC.
    assert made.value.json()["start"].startswith("2026-03-03T02:00:00")
    page.reload()
    _poll(page, "document.getElementById('signal-chart').layout !== undefined", timeout=20)
    texts = page.evaluate("document.getElementById('signal-chart').layout.annotations.map(a => a.text)")
    assert "베어링 교체" in texts
    page.context.close()
