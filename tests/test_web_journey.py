"""A new Korean company's whole journey in the dashboard, in Debian's Chromium (Playwright): from
nothing to an alert it understands, counting the clicks and the minutes.

create a machine -> upload a CP949 CSV (Korean headers, decimal commas, 오전/오후 times) and an .xlsx
-> map -> chart -> select a normal period -> train -> the backtest shows the injected fault ->
deploy -> upload a new day with a fault -> an alert whose page names the right signals with
readings and normal ranges -> acknowledge with a note.

The server is the real app with its in-process job executor; the files are generated here.
Screenshots go to ``test-artifacts/screenshots/journey-*.png`` (and to ``docs/img`` with
``AXHUB_UPDATE_SCREENSHOTS=1``); the counts are printed and written to
``test-artifacts/journey.json``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from _browser import CHROMIUM
from _korean_files import readings, write_cp949_csv, write_xlsx
from axhub.api.security import hash_password
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.models import AlertNoteRow, AlertRow, UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from test_web_dashboard import (
    KOREAN_PAGE_LATIN,
    LATIN_WORDS_JS,
    PASSWORD,
    SHOTS,
    Server,
    _data_words,
    _poll,
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

DAY1 = datetime(2026, 3, 2, 8, 0)  # local (Asia/Seoul) wall-clock times, as the files write them
DAY2 = datetime(2026, 3, 3, 8, 0)
DAY3 = datetime(2026, 3, 4, 8, 0)
HOURS = 6
FAULT_ROW = 200  # minutes after 08:00: 11:20 local, vibration +2.6 mm/s for 30 minutes


class Clicks:
    """Counts what a person does: clicks, file choices and drags (typing is not counted)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.n = 0

    def click(self, locator: Any) -> None:
        self.n += 1
        locator.click()

    def files(self, locator: Any, path: Path) -> None:
        self.n += 1
        locator.set_input_files(str(path))


@pytest.fixture(scope="module")
def journey_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Settings]]:
    from axhub.api.main import create_app

    settings = home(tmp_path_factory.mktemp("journey"))
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org = create_org(s, "Saehan Press", "saehan")
        OrgScope(s, org.id).add(
            UserRow(
                email="eng@saehan.example",
                name="김지훈",
                password_hash=hash_password(PASSWORD),
                role="engineer",
            )
        )
        org_id = org.id
    db.dispose()
    app = create_app(settings, executor="local", secure_cookies=False)
    with Server(app) as server:
        yield server.url, org_id, settings


def drag_period(page: Any, start: str, end: str) -> None:
    """Drag across the first panel of the signal chart from ``start`` to ``end`` (wall clock)."""
    box = page.evaluate(
        """([a, b]) => {
          const gd = document.getElementById('signal-chart');
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          const r = gd.getBoundingClientRect();
          return { x0: r.left + xa._offset + xa.d2p(a), x1: r.left + xa._offset + xa.d2p(b),
                   y: r.top + ya._offset + ya._length / 2 };
        }""",
        [start, end],
    )
    page.mouse.move(box["x0"], box["y"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, box["y"], steps=5)
    page.mouse.move(box["x1"], box["y"], steps=5)
    page.mouse.up()


def no_english(page: Any, settings: Settings) -> None:
    """The page as it stands (with what its scripts drew) has no English outside data and units."""
    allowed = KOREAN_PAGE_LATIN | _data_words(settings)
    words = page.evaluate(LATIN_WORDS_JS)
    bad = sorted({f"{w} ({ctx})" for w, ctx in words if w not in allowed and not re.fullmatch(r"v\d+", w)})
    assert bad == [], f"English on {page.url}: {bad}"


def test_new_company_from_nothing_to_an_understood_alert(
    browser: Any, journey_hub: tuple[str, str, Settings], tmp_path: Path
) -> None:
    base, org_id, settings = journey_hub
    normal_csv = write_cp949_csv(
        tmp_path / "프레스1호기_0302.csv", readings(DAY1, HOURS * 60, seed=1), style=1
    )
    history_xlsx = write_xlsx(
        tmp_path / "프레스1호기_0303.xlsx", readings(DAY2, HOURS * 60, fault_at=FAULT_ROW, seed=2)
    )
    new_day_csv = write_cp949_csv(
        tmp_path / "프레스1호기_0304.csv", readings(DAY3, HOURS * 60, fault_at=FAULT_ROW, seed=3)
    )

    page = new_page(browser, base, locale="ko-KR")
    login(page, "eng@saehan.example")
    did = Clicks(page)
    began = time.monotonic()

    # 1. An empty company is led to its first machine.
    did.click(page.get_by_role("link", name="첫 설비 등록하기"))
    form = page.locator("#machine-form")
    form.get_by_label("설비 아이디").fill("press-01")
    form.get_by_label("한국어 이름").fill("프레스 1호기")
    with page.expect_navigation(url=re.compile("created=press-01")):
        did.click(form.get_by_role("button", name="설비 등록"))
    shot(page, "journey-1-machine", docs=True)
    did.click(page.get_by_role("link", name="이 설비의 데이터 올리기"))
    page.wait_for_url(re.compile(r"/data\?asset=press-01"))

    # 2. A CP949 CSV from Excel: Korean headers, decimal commas, 오전/오후 and '2026. 3. 2. 오후' times.
    did.files(page.get_by_label("CSV 또는 엑셀 파일"), normal_csv)
    page.locator("#preview-table tbody tr").first.wait_for()
    assert "한글 윈도우" in page.locator("#settings-note").inner_text()
    assert "쉼표" in page.locator("#settings-note").inner_text()
    first_row = page.locator("#preview-table tbody tr").first.locator("td").all_inner_texts()
    assert "1.8" in first_row[2] or "1.9" in first_row[2] or "1.7" in first_row[2], (
        first_row
    )  # 1,8x read as 1.8x
    assert "360행" in page.locator("#preview-note").inner_text()  # the whole file, not a 64 KB guess
    mapping = page.locator("#mapping-table")
    mapping.get_by_label("진동의 단위").fill("mm/s")
    mapping.get_by_label("진동의 한국어 이름").fill("주축 진동")
    mapping.get_by_label("온도의 단위").fill("°C")
    assert not mapping.get_by_label("비고 열 저장").is_checked()  # the note column is not a signal
    shot(page, "journey-2-preview", docs=True)
    no_english(page, settings)
    did.click(page.get_by_role("button", name="측정값 저장"))
    page.locator("#stored").wait_for()
    assert "측정값 720개" in page.locator("#stored").inner_text()

    # 3. The next day as .xlsx: the saved mapping is offered.
    did.files(page.get_by_label("CSV 또는 엑셀 파일"), history_xlsx)
    _poll(page, "document.getElementById('wizard').dataset.state === 'ready'", timeout=60)
    assert "지난 파일과 같은" in page.locator("#mapping-note").inner_text()
    assert page.locator("#mapping-table").get_by_label("진동의 단위").input_value() == "mm/s"
    did.click(page.get_by_role("button", name="측정값 저장"))
    page.locator("#stored").wait_for()
    assert "측정값 720개" in page.locator("#stored").inner_text()
    did.click(page.get_by_role("link", name="차트 보기"))
    page.wait_for_url(re.compile(r"/assets/press-01"))

    # 4. The whole history on the chart; drag across the normal morning of day 1; train.
    did.click(page.get_by_role("button", name="전체"))
    _poll(
        page,
        "(() => { const gd = document.getElementById('signal-chart');"
        " return gd.dataset.rendered === 'data'"
        " && String(gd.layout.xaxis.range[0]).startsWith('2026-03-02 08'); })()",
    )
    assert "주축 진동" in page.evaluate(
        "JSON.stringify(document.getElementById('signal-chart').data.map(d => d.name))"
    )
    did.n += 1  # the drag
    drag_period(page, "2026-03-02 08:10:00", "2026-03-02 13:50:00")
    page.locator("#learn-form").wait_for()
    assert "정상 구간" in page.locator("#learn-period").inner_text()
    shot(page, "journey-3-select", docs=True)
    with page.expect_navigation(url=re.compile(r"backtest="), timeout=120_000):
        did.click(page.get_by_role("button", name="학습 시작"))

    # 5. The backtest over the whole history finds the fault injected on day 2 (11:20 local).
    _poll(page, "['done', 'failed'].includes(document.getElementById('backtest').dataset.state)", timeout=180)
    assert page.locator("#backtest").get_attribute("data-state") == "done", page.locator(
        "#backtest-summary"
    ).inner_text()
    summary = page.locator("#backtest-summary").inner_text()
    assert int(page.locator("#backtest-chart").get_attribute("data-alerts") or 0) >= 1, summary
    found = page.locator("#backtest-alerts tbody tr").all_inner_texts()
    fault = [r for r in found if re.search(r"2026\. 3\. 3\..*11:(1|2|3)", r)]
    assert fault and "주축 진동" in fault[0] and ("위험" in fault[0] or "주의" in fault[0]), found
    shot(page, "journey-4-backtest", docs=True)
    no_english(page, settings)

    # 6. Deploy in one click.
    row = page.locator("#versions-table tbody tr").first
    did.click(row.get_by_role("button", name="배포"))
    page.locator("#versions-table .badge", has_text="배포됨").wait_for()

    # 7. A new day with a fault arrives as a file: the deployed model raises an alert.
    did.click(page.get_by_role("link", name="데이터", exact=True))
    page.get_by_label("설비").select_option("press-01")
    did.files(page.get_by_label("CSV 또는 엑셀 파일"), new_day_csv)
    _poll(page, "document.getElementById('wizard').dataset.state === 'ready'", timeout=60)
    did.click(page.get_by_role("button", name="측정값 저장"))
    page.locator("#stored-alerts").wait_for()
    did.click(page.get_by_role("link", name="알람 보기"))
    page.wait_for_url(re.compile(r"/alerts/alert_"))

    # 8. The alert names the right signal with its reading and normal range, in Korean.
    title = page.locator("#alert-title").inner_text()
    assert "프레스 1호기" in title and "주축 진동" in title, title
    why = page.locator("#why-table tbody tr").first.inner_text()
    assert "주축 진동" in why and "mm/s" in why, why
    reading = float(re.search(r"(\d+\.\d+)\s*mm/s", why).group(1))  # type: ignore[union-attr]
    assert 3.8 < reading < 5.2, why  # 1.8 + 2.6 mm/s
    assert re.search(r"1\.[6-9]\d* ± 0\.\d+", why), why  # the normal range, in mm/s
    _poll(page, "document.getElementById('signal-chart').dataset.rendered === 'data'", timeout=30)
    ticked = page.evaluate("[...document.querySelectorAll('input[name=signal]:checked')].map(i => i.value)")
    assert ticked == ["진동"], ticked
    shot(page, "journey-5-alert", docs=True)
    no_english(page, settings)
    page.get_by_label("메모(확인한 내용, 조치한 내용)").fill("베어링 점검, 윤활유 보충")
    with page.expect_navigation():
        did.click(page.get_by_role("button", name="확인", exact=True))
    assert "김지훈" in page.locator("#alert-state").inner_text()
    assert "베어링 점검" in page.locator("#notes").inner_text()
    elapsed = time.monotonic() - began

    db = Database(settings.database_url)
    with db.session() as s:
        scope = OrgScope(s, org_id)
        alert = scope.get(AlertRow, page.url.rsplit("/", 1)[-1])
        assert alert.acknowledged_at is not None and alert.acknowledged_by
        assert [n.text for n in scope.list(AlertNoteRow, alert_id=alert.id)] == ["베어링 점검, 윤활유 보충"]
    db.dispose()
    SHOTS.parent.mkdir(parents=True, exist_ok=True)
    record = {"clicks": did.n, "seconds": round(elapsed, 1)}
    (SHOTS.parent / "journey.json").write_text(json.dumps(record))
    print(f"\njourney: {did.n} clicks, {elapsed:.0f} s")
    assert did.n < 20, record
    assert elapsed < 300, record
    page.context.close()
