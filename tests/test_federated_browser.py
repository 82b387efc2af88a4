"""The collaboration page in Chromium: a member signs in (Korean, then English) and sees the
members, their policies and its ε spent, with no text of the other language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _api_helpers import PASSWORD
from _browser import CHROMIUM, chromium
from _live import live_server
from axhub.store.scoped import OrgScope

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def test_member_sees_the_collaboration_in_korean_and_english(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed")
    with live_server(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}") as live:
        lead, member = live.client("a_admin"), live.client("b_admin")
        beta = member.get("/api/v1/auth/me").json()["org"]["id"]
        with live.db.session() as s:
            scope = OrgScope(s, beta)
            scope.ensure_asset(scope.ensure_site("본사"), "압축기 1", slug="comp-1")
        body = {"name": "압축기 수명", "family": "rul_mlp", "signals": ["압력"], "target": "수명"}
        cid = lead.post("/api/v1/federated", json=body).json()["id"]
        assert lead.post(f"/api/v1/federated/{cid}/invite", json={"org_id": beta}).status_code == 204
        policy = {"min_local_samples": 5, "dp": {"clip_norm": 1, "noise_multiplier": 1, "epsilon_budget": 4}}
        accepted = member.post(
            f"/api/v1/federated/{cid}/accept",
            json={"asset": "comp-1", "signals": {"압력": "압력", "수명": "수명"}, "policy": policy},
        )
        assert accepted.status_code == 204, accepted.text

        with chromium(CHROMIUM_ARGS) as browser:
            for locale, heading, status in (
                ("ko-KR", "기업 간 공동 학습", "참여 중"),
                ("en-US", "Learning together", "taking part"),
            ):
                context = browser.new_context(base_url=live.url, locale=locale)
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto("/federated")
                page.get_by_label(re.compile("E-mail|이메일")).fill("b_admin@beta.example")
                page.get_by_label(re.compile("Password|비밀번호")).fill(PASSWORD)
                page.get_by_role("button", name=re.compile("Sign in|로그인")).click()
                page.wait_for_url(re.compile(r".*/federated.*"))
                page.get_by_role("link", name="압축기 수명").click()
                assert page.get_by_role("heading", level=1).inner_text() == heading
                table = page.locator("#fed-members")
                assert status in table.inner_text()
                assert "4.00" in table.inner_text()  # the member's ε budget, as it set it
                main = page.locator("main").inner_text()
                # An admin sees its company's share code: an identifier, not a word.
                for code in page.locator("#fed-share-code code").all_inner_texts():
                    main = main.replace(code, "")
                if locale == "ko-KR":
                    # Names the companies chose (acme, beta) are theirs; every other word is Korean.
                    words = set(re.findall(r"[A-Za-z]{2,}", main)) - {
                        "AX",
                        "Hub",
                        "acme",
                        "beta",
                        "Acme",
                        "Beta",
                    }
                    assert not words, words
                context.close()
