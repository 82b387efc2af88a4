"""The inspector picks an anomaly model's operating point on the inspection page (issue 14), in
Debian's Chromium, in Korean and in English: the trade-off is drawn from the calibration images,
the saved choice is stored with the model version and carried by its bundle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _browser import CHROMIUM
from axhub.api.security import hash_password
from axhub.core.settings import Settings
from axhub.store.db import Database
from axhub.store.models import UserRow
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from test_web_dashboard import PASSWORD, Server, build_app, login, new_page, shot

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium not found at {CHROMIUM}"),
]

MODEL_NAME = "주조품-검사"
LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings, str]]:
    from axhub.ml.vision.patchcore import PatchCore
    from axhub.registry.store import ModelRegistry
    from axhub.sim.images import make_part_images
    from axhub.store.blobs import BlobStore

    torch.set_num_threads(1)
    tmp = Path(tmp_path_factory.mktemp("oppage"))
    good = make_part_images(10, 0, seed=7, size=64)
    bad = make_part_images(0, 6, seed=8, size=64)
    frame = pd.DataFrame({"image": [p.image for p in good + bad], "label": ["ok"] * 10 + ["dent"] * 6})
    model = PatchCore(input_size=64, bank_size=100, backbone="lite0", stages=[2, 3], calibration_fraction=0.3)
    bundle = model.fit(frame).save(tmp / "bundle")
    settings = Settings(home=tmp / "home")
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    with db.session() as s:
        org = create_org(s, "Hanbit Casting", "hanbit")
        scope = OrgScope(s, org.id)
        for role in ("engineer", "viewer"):
            scope.add(
                UserRow(
                    email=f"{role}@hanbit.example",
                    name=role,
                    password_hash=hash_password(PASSWORD),
                    role=role,
                )
            )
        version_id = ModelRegistry(scope, BlobStore(settings.blob_root)).register(bundle, name=MODEL_NAME).id
        s.commit()
    db.dispose()
    with Server(build_app(settings)) as server:
        yield server.url, settings, version_id


def _bundle_path(settings: Settings, version_id: str) -> Path:
    """Where the registry keeps the version's current bundle (re-issued when a point is saved)."""
    from axhub.registry.store import ModelRegistry
    from axhub.store.blobs import BlobStore
    from axhub.store.models import ModelVersionRow

    db = Database(settings.database_url)
    try:
        with db.session() as s:
            row = s.get(ModelVersionRow, version_id)
            assert row is not None
            _, path = ModelRegistry(OrgScope(s, row.org_id), BlobStore(settings.blob_root)).bundle_path(
                row.id
            )
            return Path(path)
    finally:
        db.dispose()


def _bundle_threshold(settings: Settings, version_id: str) -> float:
    from axhub.registry.bundle import BundleRunner

    return float(BundleRunner(_bundle_path(settings, version_id)).threshold)  # type: ignore[arg-type]


def _self_check_auroc(settings: Settings, version_id: str) -> float:
    from axhub.registry.bundle import read_bundle

    selection = read_bundle(_bundle_path(settings, version_id)).preprocessing["feature_selection"]
    return float(selection["self_check"]["synthetic_auroc"])


def test_inspector_picks_the_operating_point_in_korean(browser: Any, hub: tuple[str, Settings, str]) -> None:
    base, settings, version_id = hub
    trained = _bundle_threshold(settings, version_id)
    page = new_page(browser, base, locale="ko-KR")
    login(page, "engineer@hanbit.example", next_path="/inspection")
    page.wait_for_selector("#op-chart .main-svg")
    assert "판정 기준점" in page.locator("#operating h2").inner_text()
    assert "학습할 때 정해짐" in page.locator("#op-current").inner_text()
    # The label-free self-check is shown, with a caution exactly when it is weak.
    check = page.locator("#op-check")
    assert check.is_visible() and "자체 점검" in check.inner_text() and "%" in check.inner_text()
    weak = _self_check_auroc(settings, version_id) < 0.8
    assert ("약한 편입니다" in check.inner_text()) == weak
    assert ("warning" in (check.get_attribute("class") or "")) == weak
    # The calibration defects give a miss rate at every point; the slider walks the curve.
    slider = page.get_by_label("임계값")
    top = int(slider.get_attribute("max") or 0)
    assert top >= 5
    slider.fill("0")  # lowest threshold: every calibration defect caught
    assert page.locator("#op-miss").inner_text().startswith("0")
    low_far = page.locator("#op-far").inner_text()
    slider.fill(str(top))  # highest: no good part flagged
    assert (
        page.locator("#op-far").inner_text().startswith("0")
        and low_far != page.locator("#op-far").inner_text()
    )
    pick = top // 2
    slider.fill(str(pick))
    shown = float(page.locator("#op-threshold").inner_text().replace(",", ""))
    page.get_by_role("button", name="이 기준점 사용").click()
    page.wait_for_selector("#toast:not([hidden])")
    assert "기준점을 저장했습니다" in page.locator("#toast").inner_text()
    now_in_use = page.locator("#op-current").inner_text()
    assert "검사자가 선택" in now_in_use and "학습할 때" not in now_in_use, now_in_use
    words = set(LATIN_WORD.findall(page.locator("main").inner_text()))
    assert not words, f"English on the Korean page: {sorted(words)}"
    shot(page, "inspection-operating-point-ko")
    # Stored with the version and carried by its bundle: a reload shows it, the runner uses it.
    page.reload()
    page.wait_for_selector("#op-chart .main-svg")
    assert "검사자가 선택" in page.locator("#op-current").inner_text()
    assert "학습할 때" not in page.locator("#op-current").inner_text()
    assert page.locator("#op-slider").input_value() == str(pick)
    carried = _bundle_threshold(settings, version_id)
    assert carried != pytest.approx(trained) and carried == pytest.approx(shown, abs=1e-4)
    page.context.close()


def test_english_page_and_a_viewer_cannot_change_it(browser: Any, hub: tuple[str, Settings, str]) -> None:
    base, _, _ = hub
    page = new_page(browser, base)
    login(page, "viewer@hanbit.example", next_path="/inspection")
    page.wait_for_selector("#op-chart .main-svg")
    text = page.locator("#operating").inner_text()
    assert "Operating point" in text and "False alarms on new good parts" in text
    assert "Self-check of this model" in page.locator("#op-check").inner_text()
    assert not re.search("[가-힣]", text.replace(MODEL_NAME, ""))
    assert page.get_by_role("button", name="Use this operating point").count() == 0
    page.get_by_label("Threshold").fill("1")
    assert page.locator("#op-miss").inner_text().endswith("%")
    assert np.isfinite(float(page.locator("#op-threshold").inner_text().replace(",", "")))
    page.context.close()


def test_a_weak_self_check_is_called_weak(browser: Any, hub: tuple[str, Settings, str]) -> None:
    """The page's reading of a weak model (as on a product whose texture hides pasted defects): the
    hub's answer is replaced on its way to the browser by that of a weak model (KolektorSDD's)."""
    import json

    base, _, _ = hub
    page = new_page(browser, base)

    def weaken(route: Any) -> None:
        body = route.fetch().json()
        body["self_check"] = {"synthetic_auroc": 0.706, "synthetic_auroc_std": 0.015, "weak": True}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/operating-points", weaken)
    login(page, "viewer@hanbit.example", next_path="/inspection")
    page.wait_for_selector("#op-chart .main-svg")
    check = page.locator("#op-check")
    assert "70.6%" in check.inner_text() and "That is weak" in check.inner_text()
    assert "warning" in (check.get_attribute("class") or "")
    page.context.close()
