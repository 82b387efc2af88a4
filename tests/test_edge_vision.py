"""Visual inspection at the edge (issue 15): images dropped in a watched folder are scored with a
vision bundle, each file exactly once across agent restarts, defects alert locally without the
hub, and the results reach the hub exactly once. A tiny PatchCore bundle on 64 px parts."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

torch = pytest.importorskip("torch")

from _api_helpers import make_hub  # noqa: E402
from axhub.edge.agent import Agent  # noqa: E402
from axhub.edge.alerts import read_alert_log  # noqa: E402
from axhub.edge.buffer import ALERTS_KIND, RESULTS_KIND, Buffer  # noqa: E402
from axhub.edge.bundles import BundleSlots  # noqa: E402
from axhub.edge.config import AgentConfig, Identity, save_config, save_identity  # noqa: E402
from axhub.edge.vision import FolderInspector  # noqa: E402
from axhub.fleet import service  # noqa: E402
from axhub.registry.bundle import BundleRunner, sign_bundle_ed25519, zip_bundle  # noqa: E402
from axhub.registry.signing import load_or_create_hub_key  # noqa: E402
from axhub.sim.images import make_part_images  # noqa: E402
from axhub.store.models import AlertRow, EventRow  # noqa: E402
from axhub.store.platform import org_by_slug  # noqa: E402
from axhub.store.scoped import OrgScope  # noqa: E402

PAST = time.time() - 60  # files older than any settle time


@pytest.fixture(scope="module")
def vision_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd

    from axhub.ml.vision.patchcore import PatchCore

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("vision")
    good = make_part_images(8, 0, seed=7, size=64)
    bad = make_part_images(0, 4, seed=8, size=64)
    frame = pd.DataFrame({"image": [p.image for p in good + bad], "label": ["ok"] * 8 + ["dent"] * 4})
    model = PatchCore(input_size=64, bank_size=100, backbone="lite0", stages=[2, 3], calibration_fraction=0.3)
    return Path(model.fit(frame).save(tmp / "bundle"))


def drop_parts(folder: Path, n_good: int, n_bad: int, seed: int) -> dict[str, bool]:
    """Write parts as PNG files (Korean names, settled mtimes); returns file name -> is defect."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, part in enumerate(make_part_images(n_good, n_bad, seed=seed, size=64)):
        name = f"부품_{seed}_{i:02d}.png"
        Image.fromarray(part.image).save(folder / name)
        os.utime(folder / name, (PAST, PAST))
        truth[name] = part.label != "good"
    return truth


def test_each_image_is_scored_once_across_restarts_and_reaches_the_hub_once(
    vision_bundle: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "camera"
    truth = drop_parts(folder, 3, 3, seed=9)
    broken = folder / "부품_잘림.png"
    broken.write_bytes((folder / next(iter(truth))).read_bytes()[:100])  # a truncated PNG
    os.utime(broken, (PAST, PAST))
    fresh = folder / "부품_쓰는중.png"  # still being written: left for a later pass
    shutil.copy(folder / next(iter(truth)), fresh)

    runner = BundleRunner(vision_bundle)
    raised: list[dict[str, Any]] = []
    buffer = Buffer(tmp_path / "agent" / "buffer.db")
    inspector = FolderInspector(runner, folder, buffer, asset="press-1", settle_s=30, on_alert=raised.append)
    results = {r["file"]: r for r in inspector.scan()}
    assert set(results) == {*truth, broken.name}
    assert "not a readable image" in results[broken.name]["error"] and results[broken.name]["defect"] is None
    for name, is_defect in truth.items():
        r = results[name]
        assert r["defect"] == (r["score"] > runner.threshold)
        if is_defect:  # the synthetic defects score well above the operating point
            assert r["defect"], r
    flagged = {n for n, r in results.items() if r["defect"]}
    assert sorted(a["explanation"][0]["file"] for a in raised) == sorted(flagged)
    assert inspector.scan() == []
    buffer.close()

    # restart: a new buffer connection and inspector find every file already scored
    buffer = Buffer(tmp_path / "agent" / "buffer.db")
    again = FolderInspector(runner, folder, buffer, asset="press-1", settle_s=30)
    assert again.scan() == []
    os.utime(fresh, (PAST, PAST))  # the camera finished writing
    assert [r["file"] for r in again.scan()] == [fresh.name]

    # the hub stores every result and alert once, even when a batch is sent twice
    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}", secure_cookies=False)
    with hub.db.session() as s:
        token, _row = service.issue_token(OrgScope(s, org_by_slug(s, "acme").id), "검사기", created_by=None)
    with hub.db.session() as s:
        credential = service.enrol(s, token, None, "test")["credential"]
    kinds = []
    with hub.client() as c:
        while (batch := buffer.next_batch()) is not None:
            headers = {
                "Authorization": f"Device {credential}",
                "X-Batch-Id": batch.batch_id,
                "X-Batch-Kind": batch.kind,
                "Content-Type": batch.media_type,
            }
            for _ in range(2):
                answer = c.post("/device/v1/sync", content=batch.payload, headers=headers)
                assert answer.status_code == 200, answer.text
            kinds.append(batch.kind)
            buffer.ack(batch)
    buffer.close()
    assert set(kinds) == {ALERTS_KIND, RESULTS_KIND}
    with hub.db.session() as s:
        stored = s.scalars(select(EventRow).where(EventRow.kind == "inspection")).all()
        alerts = s.scalars(select(AlertRow)).all()
    fresh_defect = bool(results[next(iter(truth))]["defect"])  # same pixels as the first part
    assert sorted(e.title.split(": ", 1)[1] for e in stored) == sorted([*truth, broken.name, fresh.name])
    defects = {e.title.split(": ", 1)[1] for e in stored if e.title.startswith("defect")}
    assert defects == flagged | ({fresh.name} if fresh_defect else set())
    assert {a["id"] for a in raised} <= {a.id for a in alerts}
    assert len(alerts) == len(raised) + int(fresh_defect)


def test_the_agent_inspects_and_alerts_locally_while_the_hub_is_unreachable(
    vision_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "agent"
    home.mkdir()
    key = load_or_create_hub_key(tmp_path / "hub")
    signed = tmp_path / "signed"
    shutil.copytree(vision_bundle, signed)
    sign_bundle_ed25519(signed, key.private_pem)
    archive = zip_bundle(signed).read_bytes()
    sha = hashlib.sha256(archive).hexdigest()
    save_identity(
        home,
        Identity(
            device_id="edge_test",
            name="검사기",
            hub_url="http://127.0.0.1:9",  # nothing listens: the hub is unreachable
            credential="axd_x",
            hub_public_key=key.public_pem.decode(),
        ),
    )
    save_config(home, AgentConfig(watch_folder="camera", watch_asset="press-1", watch_settle_s=0.2))
    slots = BundleSlots(home, key.public_pem)
    slots.install(archive, sha)
    slots.begin_swap(sha)
    slots.commit_swap()
    truth = drop_parts(home / "camera", 1, 2, seed=11)

    agent = Agent(home)
    agent.run(duration_s=4)
    logged = read_alert_log(home / "alerts.log")
    assert {a["explanation"][0]["file"] for a in logged} >= {n for n, bad in truth.items() if bad}
    assert "hub unreachable" in str(agent.last_error)
    waiting = len(truth) + len(logged)  # one result per file, one alert per defect (events or outbox)
    buffer = Buffer(home / "buffer.db")
    assert buffer.depth()["total"] == waiting
    buffer.close()
    # a restarted agent scores nothing twice
    Agent(home).run(duration_s=2)
    buffer = Buffer(home / "buffer.db")
    assert buffer.depth()["total"] == waiting
    buffer.close()
