"""The web dashboard in a real browser (Debian's Chromium, headless, driven by Playwright).

One seeded hub (two companies, a data-center operator, a site, machines, readings, alerts, jobs,
models) is served by uvicorn on a free loopback port for the whole module, and one browser is
shared; each test opens its own context (cookies, language). Screenshots of every page go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _browser import CHROMIUM
from axhub.api.security import hash_password
from axhub.core.readings import make_batch
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.models import AlertRow, JobLogRow, JobRow, ModelVersionRow, UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope

PASSWORD = "correct-horse-battery"
# The demo plant's data ends here; charts open on the last day before it.
DATA_END = datetime(2024, 5, 2, 0, 0, tzinfo=UTC)


@dataclass
class Seeded:
    org_a: str
    org_b: str
    alert_id: str
    asset_slug: str


def build_app(settings: Settings) -> Any:
    """The platform's app (API + dashboard), served over plain HTTP for the test browser."""
    try:
        from axhub.api.main import create_app
    except ImportError:
        return _assembled_app(settings)
    return create_app(settings, executor="none", secure_cookies=False)


def _assembled_app(settings: Settings) -> Any:
    """Until the API's app factory is in the tree: its routers, state and error format, by hand."""
    from fastapi import FastAPI

    from axhub.api.deps import AppState
    from axhub.api.errors import install_error_handlers
    from axhub.api.routes import auth, keys, plant, readings, users
    from axhub.api.security import SessionSigner, load_or_create_secret
    from axhub.store.blobs import BlobStore
    from axhub.web import mount_web

    app = FastAPI()
    db = Database(settings.database_url)
    app.state.axhub = AppState(
        settings=settings,
        db=db,
        blobs=BlobStore(settings.blob_root),
        signer=SessionSigner(load_or_create_secret(settings.home)),
        secure_cookies=False,
    )
    install_error_handlers(app)
    for router in (
        auth.router,
        plant.sites,
        plant.assets,
        plant.signals,
        readings.router,
        users.router,
        keys.router,
    ):
        app.include_router(router, prefix="/api/v1")
    mount_web(app)
    return app


def seed(settings: Settings) -> Seeded:
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org_a = create_org(s, "Hanbit Precision", "hanbit")
        org_b = create_org(s, "Daesung Foods", "daesung")
        a, b = OrgScope(s, org_a.id), OrgScope(s, org_b.id)
        a.add(
            UserRow(
                email="kim@hanbit.example",
                name="Kim Minjun",
                password_hash=hash_password(PASSWORD),
                role="engineer",
            )
        )
        a.add(
            UserRow(
                email="admin@hanbit.example",
                name="Lee Admin",
                password_hash=hash_password(PASSWORD),
                role="admin",
            )
        )
        b.add(
            UserRow(
                email="park@daesung.example",
                name="Park Jiwoo",
                password_hash=hash_password(PASSWORD),
                role="engineer",
            )
        )
        site = a.ensure_site("Changwon plant", timezone="Asia/Seoul")
        cnc = a.ensure_asset(site, "CNC lathe 1", slug="cnc-1", kind="cnc")
        pump = a.ensure_asset(site, "Coolant pump", slug="pump-1", kind="pump")
        a.ensure_asset(site, "Air compressor", slug="comp-1", kind="compressor")
        for name, unit in (("spindle_temp", "°C"), ("vibration_rms", "mm/s"), ("spindle_load", "%")):
            a.ensure_signal(cnc, name, unit=unit)
        a.ensure_signal(pump, "flow", unit="m3/h")
        alert = a.add(
            AlertRow(
                asset_id=cnc.id,
                ts=DATA_END - timedelta(hours=3),
                severity="critical",
                kind="model",
                source="anomaly model",
                title="Unusual vibration on CNC lathe 1",
                score=9.3,
                threshold=3.1,
                explanation=[
                    {"signal": "vibration_rms", "contribution": 0.71},
                    {"signal": "spindle_temp", "contribution": 0.22},
                ],
            )
        )
        a.add(
            AlertRow(
                asset_id=pump.id,
                ts=DATA_END - timedelta(hours=9),
                severity="warning",
                kind="rule",
                source="flow limit",
                title="Flow below limit",
                score=None,
            )
        )
        site_b = b.ensure_site("Gimhae factory")
        secret = b.ensure_asset(site_b, "Secret mixer", slug="mixer-9", kind="other")
        b.add(AlertRow(asset_id=secret.id, ts=DATA_END, severity="critical", title="Daesung secret alert"))
        _seed_work(a)
        platform = create_org(s, "Gyeongnam AI Data Center", "datacenter")
        OrgScope(s, platform.id).add(
            UserRow(
                email="ops@datacenter.example",
                name="Choi Operator",
                password_hash=hash_password(PASSWORD),
                role="operator",
            )
        )
        ids = Seeded(org_a.id, org_b.id, alert.id, cnc.slug)
    with contextlib.suppress(ImportError):  # no time-series store yet: chart/upload tests skip
        _write_readings(settings, ids.org_a)

    db.dispose()
    return ids


def _seed_work(scope: OrgScope) -> None:
    """Jobs with logs and two model versions, so those pages show real rows."""
    done = scope.add(
        JobRow(
            kind="train",
            state="succeeded",
            progress=1.0,
            spec={"estimator": "anomaly/mspc"},
            finished_at=DATA_END,
        )
    )
    scope.add(JobLogRow(job_id=done.id, message="fitting MSPC on 2,880 rows"))
    scope.add(JobLogRow(job_id=done.id, message="threshold calibrated: 3.1"))
    running = scope.add(
        JobRow(kind="train", state="running", progress=0.42, spec={"estimator": "anomaly/iforest"})
    )
    scope.add(JobLogRow(job_id=running.id, message="epoch 4/10"))
    for version, (auc, f1), stage in ((1, (0.91, 0.78), "production"), (2, (0.95, 0.83), "candidate")):
        scope.add(
            ModelVersionRow(
                name="cnc-1-anomaly",
                version=version,
                family="anomaly",
                estimator="mspc",
                metrics={"roc_auc": auc, "f1": f1},
                stage=stage,
            )
        )


def _write_readings(settings: Settings, org_id: str) -> None:
    from axhub.store.timeseries import TimeSeriesStore

    store = TimeSeriesStore(settings.timeseries_root)
    n = 2 * 24 * 60  # two days, one reading a minute
    start = np.datetime64(DATA_END.replace(tzinfo=None), "us") - np.timedelta64(n, "m")
    ts = start + np.arange(n) * np.timedelta64(60, "s")
    rng = np.random.default_rng(3)
    hours = np.arange(n) / 60.0
    signals = {
        "spindle_temp": 41 + 3 * np.sin(hours / 24 * 2 * np.pi) + rng.normal(0, 0.3, n),
        "vibration_rms": 1.2 + rng.normal(0, 0.05, n) + np.where(np.arange(n) > n - 200, 2.5, 0.0),
        "spindle_load": 55 + rng.normal(0, 4, n),
    }
    for name, values in signals.items():
        store.write(org_id, make_batch("cnc-1", name, ts, values))


class Server:
    """uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def home(tmp: Path) -> Settings:
    return Settings(home=tmp / "axhub-home")


def _poll(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page (evaluate runs outside the page's CSP)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ fixtures
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
DOC_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
# Copy the key screenshots into docs/img only when asked (keeps test runs from dirtying the tree).
UPDATE_DOCS = os.environ.get("AXHUB_UPDATE_SCREENSHOTS") == "1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}; apt-get install chromium"
    ),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded, Settings]]:
    settings = home(tmp_path_factory.mktemp("web"))
    seeded = seed(settings)
    with Server(build_app(settings)) as server:
        yield server.url, seeded, settings


def new_page(browser: Any, base: str, locale: str = "en-US") -> Any:
    context = browser.new_context(base_url=base, locale=locale, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def login(page: Any, email: str, *, next_path: str = "/") -> None:
    page.goto(next_path)
    assert "/login" in page.url, "pages must send signed-out visitors to the sign-in form"
    page.get_by_label(re.compile("E-mail|이메일")).fill(email)
    page.get_by_label(re.compile("Password|비밀번호")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in|로그인")).click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def shot(page: Any, name: str, docs: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and UPDATE_DOCS:
        DOC_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMG / f"dashboard-{name}.png")


def needs_store() -> None:
    pytest.importorskip(
        "axhub.store.timeseries", reason="the time-series store (axhub.store.timeseries) is not in this tree"
    )


# ------------------------------------------------------------------------------ scenarios
def test_login_shows_the_plant(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, _, _ = hub
    page = new_page(browser, base)
    page.goto("/login")
    shot(page, "login", docs=True)
    page.get_by_label("E-mail").fill("kim@hanbit.example")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert "Wrong e-mail or password" in page.locator("#login-error").inner_text()

    login(page, "kim@hanbit.example")
    assert page.get_by_role("heading", level=1).inner_text() == "Plant overview"
    tile = page.locator("a.asset-tile", has_text="CNC lathe 1")
    assert "st-critical" in (tile.get_attribute("class") or "")
    assert "Critical" in tile.inner_text()
    assert "Normal" in page.locator("a.asset-tile", has_text="Air compressor").inner_text()
    # Titles are built in the page's language from the alert's machine and signals.
    assert "CNC lathe 1: unusual vibration_rms" in page.locator("#alert-feed").inner_text()
    assert page.locator("#kpi-open-alerts").inner_text() == "2"
    shot(page, "overview", docs=True)
    page.context.close()


def test_asset_page_draws_history_with_alert_markers(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    needs_store()
    base, seeded, _ = hub
    page = new_page(browser, base)
    login(page, "kim@hanbit.example", next_path=f"/assets/{seeded.asset_slug}")
    chart = page.locator("#signal-chart")
    # selectors and evaluate, not wait_for_function: Playwright evals its predicate in the page,
    # which the dashboard's Content-Security-Policy (no eval) forbids
    page.wait_for_selector("#signal-chart[data-rendered]", state="attached")
    assert chart.get_attribute("data-rendered") == "data", page.locator("#chart-status").inner_text()
    # Three signals ticked by default: three stacked line traces, plus the alert marker shape.
    assert page.locator("#signal-chart .scatterlayer .trace, #signal-chart .gl-container").count() >= 1
    assert page.evaluate("document.getElementById('signal-chart').data.length") == 3
    assert page.evaluate("document.getElementById('signal-chart').layout.shapes.length") == 1
    assert "points" in page.locator("#chart-status").inner_text()
    assert page.locator("#score-chart .main-svg").count() >= 1
    assert "no model yet" in page.locator("#rul-card").inner_text()
    shot(page, "asset", docs=True)
    # Untick a signal: the chart is redrawn with two.
    page.locator('input[name="signal"][value="spindle_load"]').uncheck()
    _poll(page, "document.getElementById('signal-chart').data.length === 2")
    page.context.close()


def test_acknowledge_an_alert(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, seeded, settings = hub
    page = new_page(browser, base)
    login(page, "kim@hanbit.example", next_path="/alerts")
    item = page.locator(f"#alert-{seeded.alert_id}")
    assert "vibration_rms" in page.evaluate(
        f"JSON.stringify(document.querySelector('#alert-{seeded.alert_id} [data-explanation]').data[0].y)"
    )
    shot(page, "alerts", docs=True)
    item.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"#alert-{seeded.alert_id}.acked", state="attached")
    # Recorded in the database with who and when (polled: the API commits as the response goes out).
    db = Database(settings.database_url)
    deadline = time.monotonic() + 5
    while True:
        with db.session() as s:
            row = s.get(AlertRow, seeded.alert_id)
            assert row is not None
            if row.acknowledged_at is not None or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert row.acknowledged_at is not None and row.acknowledged_by
    db.dispose()
    page.reload()
    assert page.locator(f"#alert-{seeded.alert_id}").count() == 0  # no longer open
    page.goto("/alerts?state=acknowledged")
    assert "Acknowledged by Kim Minjun" in page.locator(f"#alert-{seeded.alert_id}").inner_text()
    page.context.close()


def test_upload_shows_the_bad_row(browser: Any, hub: tuple[str, Seeded, Settings], tmp_path: Path) -> None:
    base, _, _ = hub
    csv = tmp_path / "pump-export.csv"
    lines = ["time,flow,pressure"]
    for minute in range(10):
        flow = "abc" if minute == 2 else f"{12 + minute / 10:.1f}"  # the third data row: spreadsheet row 4
        lines.append(f"2024-05-01 08:{minute:02d}:00,{flow},3.{minute}")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page = new_page(browser, base)
    login(page, "kim@hanbit.example", next_path="/data")
    page.get_by_label("Machine").select_option("pump-1")
    page.get_by_label("CSV or Excel file").set_input_files(str(csv))
    preview = page.locator("#preview-table tbody tr")
    preview.first.wait_for()  # the server reads the whole file, then the first rows are drawn
    assert preview.count() == 8  # the first rows only
    assert page.get_by_label("Time column").input_value() == "time"
    assert "10 rows" in page.locator("#preview-note").inner_text()  # counted over the whole file
    errors = page.locator("#preview-problems table.row-errors tbody tr")
    assert errors.count() == 1
    cells = errors.first.locator("td").all_inner_texts()
    assert cells[:3] == ["pump-export.csv", "4", "flow"] and "abc" in cells[3], cells
    page.get_by_role("button", name="Store the readings").click()
    page.locator("#stored").wait_for()
    assert "19 readings of 2 signals stored from 10 rows" in page.locator("#upload-result").inner_text()
    shot(page, "data-upload", docs=True)
    page.context.close()


def test_language_follows_browser_and_switch_persists(
    browser: Any, hub: tuple[str, Seeded, Settings]
) -> None:
    base, _, _ = hub
    page = new_page(browser, base, locale="ko-KR")
    page.goto("/login")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.get_by_role("heading", level=1).inner_text() == "로그인"
    login(page, "kim@hanbit.example")
    assert page.get_by_role("heading", level=1).inner_text() == "공장 현황"
    assert "주의" in page.locator("a.asset-tile", has_text="Coolant pump").inner_text()
    # Dates are formatted for the chosen locale in the site's time zone (KST = UTC+9).
    first_time = page.locator("#alert-feed time").first
    # The pump's alert is at 15:00 UTC on 1 May, which is midnight of 2 May in Changwon.
    assert re.search(r"2024\. 5\. 2\..*(오전|AM) ?12:00|2024\. 5\. 2\..*00:00", first_time.inner_text()), (
        first_time.inner_text()
    )
    shot(page, "overview-ko", docs=True)
    page.get_by_role("link", name="EN").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Plant overview"
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto("/alerts")  # the choice is remembered on the next page
    assert page.get_by_role("heading", level=1).inner_text() == "Alerts"
    page.get_by_role("link", name="한국어").click()
    assert page.get_by_role("heading", level=1).inner_text() == "알람"
    page.context.close()


def test_second_company_sees_nothing_of_the_first(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, seeded, _ = hub
    page = new_page(browser, base)
    login(page, "park@daesung.example")
    body = page.locator("main").inner_text()
    assert "Secret mixer" in body
    for foreign in ("CNC lathe 1", "Coolant pump", "Changwon", "Unusual vibration"):
        assert foreign not in body
    assert page.goto(f"/assets/{seeded.asset_slug}").status == 404
    page.goto("/alerts?state=all")
    assert "Unusual vibration" not in page.locator("main").inner_text()
    for path in (f"/web/api/alerts/{seeded.alert_id}/ack",):
        status = page.evaluate(
            "async (p) => (await fetch(p, {method: 'POST', headers: {'X-CSRF-Token': AX.csrf()}})).status",
            path,
        )
        assert status == 404
    for page_path in ("/models", "/jobs", "/inspection"):
        page.goto(page_path)
        assert "cnc-1-anomaly" not in page.locator("main").inner_text()
    assert page.goto("/operator").status == 403
    page.context.close()


def test_every_page_renders_accessibly(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, _, _ = hub
    page = new_page(browser, base)
    login(page, "admin@hanbit.example")
    unlabeled_js = """() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && !el.closest('[hidden]'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map(el => el.outerHTML)"""
    for path, name in (
        ("/models", "models"),
        ("/jobs", "jobs"),
        ("/admin", "admin"),
        ("/inspection", "inspection"),
        ("/data", "data"),
    ):
        response = page.goto(path)
        assert response.status == 200, path
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.evaluate(unlabeled_js) == [], f"inputs without labels on {path}"
        shot(page, name, docs=name in {"models", "jobs"})
    # Keyboard: the skip link comes first and moves focus to the main content.
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Models: compare two versions side by side.
    page.goto("/models")
    for box in page.locator("input.cmp").all()[:2]:
        box.check()
    page.get_by_role("button", name="Compare").click()
    assert "roc_auc" in page.locator("#compare-out").inner_text()
    # Jobs: logs open on demand.
    page.goto("/jobs")
    page.get_by_role("button", name="Show logs").first.click()
    _poll(
        page,
        "[...document.querySelectorAll('pre.log')]"
        ".some(p => p.textContent.includes('epoch') || p.textContent.includes('threshold'))",
    )
    # Tablet: the navigation folds into a strip and nothing overflows sideways.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "overview-tablet", docs=True)
    page.context.close()


def test_operator_sees_companies_not_their_data(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, _, _ = hub
    page = new_page(browser, base)
    login(page, "ops@datacenter.example", next_path="/operator")
    text = page.locator("main").inner_text()
    assert "Hanbit Precision" in text and "Daesung Foods" in text
    row = page.locator("tr", has_text="Hanbit Precision").locator("td").all_inner_texts()
    assert row[2:5] == ["2", "3", "2"]  # users, machines, jobs
    shot(page, "operator")
    page.context.close()


# Latin words a Korean page may show: the product's name, the language switch, units and
# abbreviations Korean engineers write in Latin letters. Everything else in Latin letters must be
# the company's own data (names, ids), which the test collects from the database.
KOREAN_PAGE_LATIN = {
    *("AX", "Hub", "EN", "API", "CNC", "CPU", "GPU", "CSV", "OEE", "RUL", "UTC", "KST"),
    *("rpm", "mm", "mm/s", "kW", "Hz", "bar", "m3", "m3/h"),
    # file formats and encodings, named as Korean engineers write them
    *("MQTT", "OPC", "UA", "Modbus", "JSON", "https", "STARTTLS"),
    *("xlsx", "Parquet", "UTF-8", "BOM", "CP949", "CP949/EUC-KR", "EUC-KR", "Latin-1"),
}

LATIN_WORDS_JS = """() => {
  const out = [];
  const WORD = /[A-Za-z][A-Za-z0-9_./-]*/g;
  const trim = (w) => w.replace(/[./-]+$/, '');
  const skip = (el) => el.closest('script, style, code, pre, [translate="no"], .modebar');
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || skip(el) || !visible(el)) continue;
    // A value quoted from the user's own file ('abc') is data, not a text of the page.
    const text = n.textContent.replace(/'[^']*'/g, '');
    for (const w of text.match(WORD) || []) out.push([trim(w), n.textContent.trim().slice(0, 80)]);
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (skip(el)) continue;
    for (const a of ['placeholder', 'aria-label', 'title']) {
      const v = el.getAttribute(a) || '';
      if (a === 'title' && el.tagName === 'TIME') continue;  // the machine-readable instant
      for (const w of v.match(WORD) || []) out.push([trim(w), a + ': ' + v.slice(0, 80)]);
    }
  }
  return out;
}"""


def _data_words(settings: Settings) -> set[str]:
    """Every Latin word in the company's own data (names, ids, units, users, titles of datasets)."""
    from axhub.store.models import AssetRow, OrganizationRow, SignalRow, SiteRow

    words: set[str] = set()
    db = Database(settings.database_url)
    with db.session() as s:
        for model, fields in (
            (AssetRow, ("name", "slug", "name_en")),
            (SignalRow, ("name", "unit", "name_en")),
            (SiteRow, ("name", "name_en", "timezone")),
            (UserRow, ("name", "email")),
            (OrganizationRow, ("name", "slug")),
            (ModelVersionRow, ("name", "estimator")),
        ):
            for row in s.query(model).all():
                for f in fields:
                    words.update(re.findall(r"[A-Za-z][A-Za-z0-9_./-]*", str(getattr(row, f) or "")))
    db.dispose()
    return words


def test_korean_pages_have_no_english(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    base, seeded, settings = hub
    allowed = KOREAN_PAGE_LATIN | _data_words(settings)
    page = new_page(browser, base, locale="ko-KR")
    page.goto("/login")
    found: dict[str, list[str]] = {}

    def audit(path: str) -> None:
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # charts and localised dates are drawn after load
        words = page.evaluate(LATIN_WORDS_JS)
        bad = sorted(
            {f"{w} ({ctx})" for w, ctx in words if w not in allowed and not re.fullmatch(r"v\d+", w)}
        )
        if bad:
            found[path] = bad

    audit("/login")
    login(page, "admin@hanbit.example")
    for path in (
        "/",
        "/plant",
        "/alerts?state=all",
        f"/assets/{seeded.asset_slug}",
        "/data",
        "/models",
        "/jobs",
        "/admin",
        "/inspection",
        "/refused",
        f"/alerts/{seeded.alert_id}",
    ):
        audit(path)
    page.context.close()
    page = new_page(browser, base, locale="ko-KR")
    login(page, "ops@datacenter.example", next_path="/operator")
    audit("/operator")
    page.context.close()
    assert found == {}, "English on Korean pages:\n" + "\n".join(f"{p}: {w}" for p, w in found.items())


HANGUL_JS = """() => {
  const out = [];
  const skip = (el) => el.closest('script, style, code, pre, [translate="no"], .modebar');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || skip(el) || !el.getClientRects().length) continue;
    if (/[\\uac00-\\ud7a3]/.test(n.textContent)) out.push(n.textContent.trim().slice(0, 80));
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (skip(el)) continue;
    for (const a of ['placeholder', 'aria-label', 'title'])
      if (/[\\uac00-\\ud7a3]/.test(el.getAttribute(a) || '')) out.push(a + ': ' + el.getAttribute(a));
  }
  return out;
}"""


def test_english_pages_have_no_korean(browser: Any, hub: tuple[str, Seeded, Settings]) -> None:
    """The mirror of the Korean check: an English page shows no Hangul outside the company's data
    (the seeded company's names are English, so any Hangul is a text of the page)."""
    base, seeded, _ = hub
    page = new_page(browser, base, locale="en-US")
    found: dict[str, list[str]] = {}
    login(page, "admin@hanbit.example")
    for path in (
        "/",
        "/plant",
        "/alerts?state=all",
        f"/alerts/{seeded.alert_id}",
        f"/assets/{seeded.asset_slug}",
        "/data",
        "/models",
        "/jobs",
        "/admin",
        "/inspection",
        "/refused",
    ):
        assert page.goto(path).status == 200, path
        page.wait_for_timeout(300)
        if bad := page.evaluate(HANGUL_JS):
            found[path] = bad
    page.context.close()
    assert found == {}, found
