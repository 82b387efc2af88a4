"""The whole collaboration from the dashboard, in Chromium, in Korean and in English, by people
who never open a terminal: the lead's admin creates it, the member's admin reads its share code
on the page and the lead invites by it (a wrong code answers in the page's language), both
accept (signal mapping + site policy), the lead starts a run; the run is a job whose client
processes read each member's own readings, and its rounds appear on the page when it ends."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from _api_helpers import PASSWORD
from _browser import CHROMIUM, chromium
from _live import live_server
from axhub.core.readings import make_batch
from axhub.core.settings import Settings
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.torch]  # a run trains with torch
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Per company: its machine (slug, name) and its own names for pressure and remaining life.
COMPANIES = {
    "a_admin@acme.example": ("comp-a", "압축기 가", "토출압력", "잔여수명"),
    "b_admin@beta.example": ("comp-b", "압축기 나", "압력", "수명"),
}
TEXTS = {
    "ko-KR": {"bad_code": "공유 코드를 가진 기업이 없습니다", "name": "압축기 공동 수명"},
    "en-US": {"bad_code": "No company has that share code", "name": "Compressor life together"},
}


def _seed(live: object, org_of: dict[str, str]) -> None:
    settings = Settings(home=live.home, database_url="sqlite://")  # type: ignore[attr-defined]
    store = TimeSeriesStore(settings.timeseries_root)
    ts = np.arange(200, dtype=np.int64) * 60_000_000 + 1_764_000_000_000_000
    for i, (email, (slug, name, pressure, life)) in enumerate(COMPANIES.items()):
        org = org_of[email]
        with live.db.session() as s:  # type: ignore[attr-defined]
            scope = OrgScope(s, org)
            asset = scope.ensure_asset(scope.ensure_site("본사"), name, slug=slug)
            for sig in (pressure, life):
                scope.ensure_signal(asset, sig)
        p = np.random.default_rng(i).normal(6.0 + i, 0.5, len(ts))
        store.write(org, make_batch(slug, pressure, ts, p))
        store.write(org, make_batch(slug, life, ts, 300 - 20 * p))


def _sign_in(browser: object, url: str, locale: str, email: str) -> object:
    context = browser.new_context(base_url=url, locale=locale)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/federated")
    page.get_by_label(re.compile("E-mail|이메일")).fill(email)
    page.get_by_label(re.compile("Password|비밀번호")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in|로그인")).click()
    page.wait_for_url(re.compile(r".*/federated.*"))
    return page


def _accept(page: object, email: str) -> None:
    slug, _, pressure, life = COMPANIES[email]
    form = page.locator("#fed-accept")  # type: ignore[attr-defined]
    form.locator("select[name=asset]").select_option(slug)
    inputs = form.locator("input[data-schema]")
    for i in range(inputs.count()):
        field = inputs.nth(i)
        field.fill(pressure if field.get_attribute("data-schema") == "압력" else life)
    form.locator("input[name=min_local_samples]").fill("20")
    form.locator("input[name=allowed_metrics][value=rmse]").check()
    form.locator("button[type=submit]").click()
    page.locator("#fed-policy").wait_for()  # type: ignore[attr-defined]


def _latin_words(page: object, allowed: set[str]) -> set[str]:
    main = page.locator("main").inner_text()  # type: ignore[attr-defined]
    return set(re.findall(r"[A-Za-z]{2,}", main)) - allowed


def test_create_invite_accept_run_from_the_dashboard(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed")
    env = {"AXHUB_SERVE_JOB_WORKERS": "1"}
    with live_server(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}", env=env) as live:
        org_of = {
            email: live.client(who).get("/api/v1/auth/me").json()["org"]["id"]
            for email, who in (("a_admin@acme.example", "a_admin"), ("b_admin@beta.example", "b_admin"))
        }
        _seed(live, org_of)
        with chromium(CHROMIUM_ARGS) as browser:
            for locale in ("ko-KR", "en-US"):
                text = TEXTS[locale]
                lead = _sign_in(browser, live.url, locale, "a_admin@acme.example")
                member = _sign_in(browser, live.url, locale, "b_admin@beta.example")
                code = member.locator("#fed-share-code code").inner_text().strip()

                create = lead.locator("#fed-create")
                create.locator("input[name=name]").fill(text["name"])
                create.locator("select[name=family]").select_option("rul_mlp")
                create.locator("textarea[name=signals]").fill("압력")
                create.locator("input[name=target]").fill("수명")
                create.locator("button[type=submit]").click()
                lead.wait_for_url(re.compile(r".*/federated\?c=fc_.*"))
                assert lead.get_by_role("heading", level=2).first.inner_text().endswith(text["name"])

                invite = lead.locator("#fed-invite")
                invite.locator("input[name=share_code]").fill("sh_nobody")
                invite.locator("button[type=submit]").click()
                error = invite.locator(".form-error")
                error.wait_for(state="visible")
                assert text["bad_code"] in error.inner_text()
                invite.locator("input[name=share_code]").fill(code)
                invite.locator("button[type=submit]").click()
                lead.locator("#fed-members", has_text="beta").wait_for()
                _accept(lead, "a_admin@acme.example")

                member.goto("/federated")
                member.get_by_role("link", name=text["name"]).click()
                _accept(member, "b_admin@beta.example")

                lead.reload()
                run = lead.locator("#fed-run")
                run.locator("input[name=rounds]").fill("2")
                run.locator("button[type=submit]").click()
                # The job runs the hub and one process per member; the page reloads itself
                # when the job ends, and the rounds are on it.
                lead.locator("#fed-rounds tbody tr").nth(1).wait_for(timeout=240_000)
                assert lead.locator("#fed-rounds tbody tr").count() == 2
                assert lead.locator("#fed-download").is_visible()
                # Both let their RMSE out: each row shows its joint and own-data-only figure.
                rows = lead.locator("#fed-members tbody tr")
                assert rows.count() == 2
                for i in range(2):
                    for col in (6, 7):
                        assert re.fullmatch(r"\d+\.\d{3}", rows.nth(i).locator("td").nth(col).inner_text())
                member.reload()
                assert member.locator("#fed-rounds tbody tr").count() == 2

                if locale == "ko-KR":
                    # Company names (acme, beta) and the share code are identifiers, not words.
                    for page in (lead, member):
                        own_code = page.locator("#fed-share-code code").inner_text()
                        allowed = {"AX", "Hub", "acme", "beta", "Acme", "Beta"}
                        allowed |= set(re.findall(r"[A-Za-z]{2,}", own_code))
                        assert not _latin_words(page, allowed), _latin_words(page, allowed)
                else:
                    assert "Joint model" in lead.locator("main").inner_text()
                for page in (lead, member):
                    page.context.close()
