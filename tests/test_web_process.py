"""The process-optimisation page in Debian's Chromium: an engineer makes a recommendation and
dry-runs it (Korean page, Korean setpoint names, no approve button); an approver approves it,
the hub writes the simulated cell's OPC UA setpoints and reads them back; the audit trail shows
it; rollback restores the previous setpoints."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _browser import CHROMIUM
from axhub.api.security import hash_password
from axhub.core.settings import Settings
from axhub.ml.process.limits import ProcessLimits
from axhub.serve.process import ProcessService
from axhub.serve.setpoints import SetpointTarget
from axhub.sim import process as sp
from axhub.sim.process_cell import ProcessCell
from axhub.store.db import Database
from axhub.store.models import UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from test_web_dashboard import PASSWORD, Server, build_app, login, new_page, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}"),
]

# Korean setpoint names on the hub, mapped to the cell's OPC UA nodes.
KOREAN = {
    "이송량": "feed_per_tooth_mm",
    "주축회전수": "spindle_speed_rpm",
    "클램프압력": "clamp_pressure_bar",
}


class CellThread:
    """The simulated cell's servers on their own event loop, beside the web server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.cell = ProcessCell("가공셀", seed=3)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __enter__(self) -> CellThread:
        self.thread.start()
        self.call(self.cell.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.cell.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def setpoints(self) -> dict[str, float]:
        raw = self.call(self.cell.setpoints())
        return {k: raw[v] for k, v in KOREAN.items()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CellThread]]:
    settings = Settings(home=Path(tmp_path_factory.mktemp("process")) / "home")
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org = create_org(s, "Hanbit Precision", "hanbit")
        scope = OrgScope(s, org.id)
        for email, role in (("engineer@hanbit.example", "engineer"), ("boss@hanbit.example", "approver")):
            scope.add(
                UserRow(email=email, name=f"{role} Kim", password_hash=hash_password(PASSWORD), role=role)
            )
        org_id = org.id
    with CellThread() as cell:
        limits = ProcessLimits(
            {k: sp.BOUNDS[v] for k, v in KOREAN.items()},
            {k: sp.MAX_STEP[v] for k, v in KOREAN.items()},
            [{"주축회전수": (9200.0, 9700.0)}],
            trust_radius=0.3,
        )
        target = SetpointTarget(
            "opcua", endpoint=cell.cell.endpoint, nodes={k: cell.cell.node_id(v) for k, v in KOREAN.items()}
        )
        service = ProcessService(db, org_id)
        cell_id = service.create_cell("가공셀-7", limits, target)
        sim, rng = sp.ProcessSim(seed=9), np.random.default_rng(9)
        records = []
        for i in range(10):
            s = {v: sp.BASELINE[v] + rng.uniform(-1, 1) * sp.MAX_STEP[v] for v in KOREAN.values()}
            parts = sim.run_batch(s)
            records.append(
                {"batch_key": f"B{i}", "lot": parts[0].lot, "settings": {k: s[v] for k, v in KOREAN.items()},
                 "n_parts": len(parts), "n_passed": sum(p.passed for p in parts),
                 "metrics": {"사이클시간": parts[0].cycle_time_s}}
            )  # fmt: skip
        service.record_batches(cell_id, records)
        db.dispose()
        with Server(build_app(settings)) as server:
            yield server.url, cell


LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
ALLOWED_LATIN = {"Hub", "Hanbit", "Precision", "engineer", "Kim"}


def test_recommend_dry_run_approve_write_back_and_roll_back(
    browser: Any, hub: tuple[str, CellThread]
) -> None:
    url, cell = hub
    before = cell.setpoints()
    page = new_page(browser, url, locale="ko-KR")
    login(page, "engineer@hanbit.example", next_path="/process")
    page.get_by_role("button", name="추천 만들기").click()
    page.wait_for_selector("#rec-table", timeout=90_000)  # learning takes seconds on a busy machine
    assert page.locator("#rec-status").inner_text() == "승인 대기"
    assert "예상 수율" in page.locator("#rec-effect").inner_text()
    page.wait_for_selector("#pd-chart .main-svg")
    # What yield costs in cycle time: the Pareto front of allowed settings (Korean metric name).
    page.wait_for_selector("#pareto-chart .main-svg")
    assert "사이클시간" in page.locator("#recommendation h3").all_inner_texts()[-1]
    # An engineer may dry-run but not approve.
    assert page.locator("[data-approve]").count() == 0
    page.get_by_role("button", name="모의 실행").click()
    page.wait_for_selector("#dry-run-result:not([hidden])")
    assert "모의 실행" in page.locator("#dry-run-result").inner_text()
    words = set(LATIN_WORD.findall(page.locator("main").inner_text())) - ALLOWED_LATIN
    assert not words, f"English on the Korean page: {sorted(words)}"
    shot(page, "process-ko")
    assert cell.setpoints() == before  # nothing written
    recommended = {
        el.get_attribute("data-name"): float(el.get_attribute("data-value") or "nan")
        for el in page.locator(".rec-value").all()
    }
    assert any(abs(recommended[k] - before[k]) > 1e-9 for k in before), "a change is recommended"
    page.context.close()

    page = new_page(browser, url, locale="en-US")
    login(page, "boss@hanbit.example", next_path="/process")
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Approve and write").click()
    page.wait_for_selector("#rec-status:text('written')", timeout=60_000)
    now = cell.setpoints()
    assert all(abs(now[k] - recommended[k]) <= 1e-6 * max(1, abs(v)) for k, v in recommended.items())
    row = page.locator("#audit tr.audit-write")
    assert row.get_attribute("data-ok") == "yes" and "approver Kim" in row.inner_text()
    shot(page, "process-en")

    page.get_by_role("button", name="Roll back the last write").click()
    page.wait_for_selector("#audit tr.audit-rollback")
    assert page.locator("#rec-status").inner_text() == "rolled back"
    after = cell.setpoints()
    assert all(abs(after[k] - before[k]) <= 1e-6 * max(1, abs(v)) for k, v in before.items())
    page.context.close()
