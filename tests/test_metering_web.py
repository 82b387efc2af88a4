"""The operator's metering console (issue 19) in Chromium: utilisation, queue wait and
per-company CPU/GPU-hours over time, this month against the quota, in Korean and English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from _browser import CHROMIUM, sign_in
from axhub.core.timeutil import utcnow
from axhub.store import metering
from axhub.store.db import Database
from axhub.store.models import ComputeQuotaRow, JobRow
from axhub.store.scoped import OrgScope
from test_web_dashboard import (
    HANGUL_JS,
    KOREAN_PAGE_LATIN,
    LATIN_WORDS_JS,
    PASSWORD,
    Seeded,
    Server,
    _data_words,
    build_app,
    home,
    new_page,
    seed,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}"),
]


def _job(scope: OrgScope, cls: str, *, waited_s: float, ran_s: float, ago_h: float) -> None:
    """One finished attempt: queued, waited ``waited_s``, ran ``ran_s``, ended ``ago_h`` ago."""
    end = utcnow() - timedelta(hours=ago_h)
    start = end - timedelta(seconds=ran_s)
    job = scope.add(
        JobRow(
            kind="train",
            resource_class=cls,
            state="succeeded",
            attempts=1,
            created_at=start - timedelta(seconds=waited_s),
            started_at=start,
        )
    )
    metering.record_attempt(scope.session, job, outcome="succeeded", finished_at=end)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded, Any]]:
    settings = home(tmp_path_factory.mktemp("metering-web"))
    seeded = seed(settings)
    db = Database(settings.database_url)
    with db.session() as s:
        a, b = OrgScope(s, seeded.org_a), OrgScope(s, seeded.org_b)
        _job(a, "cpu", waited_s=10, ran_s=2 * 3600, ago_h=3)  # 2 CPU-hours
        _job(a, "gpu", waited_s=50, ran_s=3600, ago_h=5)  # 1 GPU-hour
        _job(b, "cpu", waited_s=30, ran_s=1800, ago_h=2)  # 0.5 CPU-hours
        b.add(JobRow(kind="train", resource_class="gpu", state="queued"))  # waiting now
        metering.set_quota(s, seeded.org_a, cpu_hours=8.0, gpu_hours=None)
    db.dispose()
    with Server(build_app(settings)) as server:
        yield server.url, seeded, settings


def _sign_in(page: Any, email: str, path: str) -> None:
    sign_in(page, email, PASSWORD, path)
    page.goto(path)  # the sign-in form returns to the page, not to its query
    page.wait_for_function("() => document.querySelector('#util-chart .main-svg') !== null")


def _hours(text: str) -> float:
    return float(re.match(r"[\d.,]+", text.strip()).group(0).replace(",", ""))  # type: ignore[union-attr]


def _row(page: Any, slug: str) -> list[str]:
    return page.locator(f"#month-table tr[data-org='{slug}'] td").all_inner_texts()


def test_the_operator_sees_hours_waits_and_quotas_in_korean(
    browser: Any, console: tuple[str, Seeded, Any]
) -> None:
    base, _, settings = console
    page = new_page(browser, base, locale="ko-KR")
    _sign_in(page, "ops@datacenter.example", "/operator/metering?span=24h")
    assert page.locator("h1").inner_text() == "연산 사용량"
    hanbit, daesung = _row(page, "hanbit"), _row(page, "daesung")
    assert _hours(hanbit[3]) == 2.0 and "(25.0%)" in hanbit[3]  # 2 of 8 CPU-hours
    assert _hours(hanbit[5]) == 1.0 and _hours(daesung[3]) == 0.5 and _hours(daesung[5]) == 0.0
    now = page.locator("#metering-now tr[data-class-row='gpu'] td[data-now='queued']").inner_text()
    assert now == "1"
    assert _hours(page.locator("[data-summary='wait-mean']").inner_text()) == 30.0  # (10+50+30)/3
    # charts: one line per class; one stacked bar per company, and the class toggle redraws them
    assert page.evaluate("document.getElementById('util-chart').data.length") == 2
    usage = "document.getElementById('usage-chart')"
    assert page.evaluate(f"{usage}.data.map(t => t.y.reduce((a, b) => a + b, 0)).sort()") == [0.5, 2.0]
    page.locator("[data-class='gpu']").click()
    page.wait_for_function(f"() => {usage}.dataset.class === 'gpu'")
    assert page.evaluate(f"{usage}.data.map(t => t.y.reduce((a, b) => a + b, 0)).sort()") == [0.0, 1.0]
    # no English on the Korean page (company names are data)
    allowed = KOREAN_PAGE_LATIN | _data_words(settings)
    words = {w for w, _ in page.evaluate(LATIN_WORDS_JS)} - allowed
    assert not {w for w in words if not re.fullmatch(r"v\d+", w)}, words
    # a quota saved from the page is what scheduling enforces
    page.locator("input[aria-label$='· daesung'][name='gpu_hours_per_month']").fill("12.5")
    page.locator("#month-table tr[data-org='daesung'] button").click()
    page.wait_for_function("() => !document.getElementById('toast').hidden")
    db = Database(settings.database_url)
    with db.session() as s:
        row = s.get(ComputeQuotaRow, console[1].org_b)
        assert row is not None and row.gpu_hours_per_month == 12.5 and row.cpu_hours_per_month is None
    db.dispose()
    page.context.close()


def test_english_console_and_only_for_the_operator(browser: Any, console: tuple[str, Seeded, Any]) -> None:
    base, _, _ = console
    page = new_page(browser, base, locale="en-US")
    _sign_in(page, "ops@datacenter.example", "/operator/metering?span=30d")
    assert page.locator("h1").inner_text() == "Compute metering"
    assert page.locator("nav.range a[aria-current='true']").inner_text() == "30 days"
    assert page.evaluate(HANGUL_JS) == []
    assert page.get_by_role("link", name="Compute metering").count() >= 1  # in the navigation
    page.context.close()
    engineer = new_page(browser, base, locale="en-US")
    engineer.goto("/operator/metering")
    engineer.locator("#email").fill("kim@hanbit.example")
    engineer.locator("#password").fill(PASSWORD)
    engineer.locator("form[action='/login'] button[type=submit]").click()
    engineer.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    assert (
        engineer.locator("#month-table").count() == 0
        and "Hanbit" not in engineer.locator("main").inner_text()
    )
    engineer.context.close()
