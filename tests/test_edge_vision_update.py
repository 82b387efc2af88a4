"""Over-the-air update of a vision bundle (issue 15): the agent runs the new bundle on the watched
folder's newest images before it replaces the one inspecting parts, keeps the old one when the new
one fails on them, and waits for a first image rather than switching unchecked.

The bundles are small hand-built ONNX graphs (score = mean brightness), so this runs without torch:
one takes colour images of any size, the other was built for a greyscale camera (one channel).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from axhub.edge.agent import Agent
from axhub.edge.buffer import RESULTS_KIND, Buffer, decode_events
from axhub.edge.bundles import SWAP_FILE, BundleSlots
from axhub.edge.config import AgentConfig, Identity, save_config, save_identity
from axhub.registry.bundle import sign_bundle_ed25519, write_bundle, zip_bundle
from axhub.registry.export import OPSET
from axhub.registry.signing import HubSigningKey, load_or_create_hub_key

PAST = time.time() - 60  # older than any settle time


def brightness_graph(channels: int | str) -> bytes:
    """score = mean pixel value per image; ``channels`` fixed (1: a greyscale model) or free."""
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", channels, "h", "w"])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n"])
    node = helper.make_node("ReduceMean", ["input"], ["score"], axes=[1, 2, 3], keepdims=0)
    graph = helper.make_graph([node], "brightness", [image], [score])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def signed_archive(tmp: Path, key: HubSigningKey, name: str, channels: int | str, threshold: float) -> bytes:
    directory = write_bundle(
        tmp / name,
        onnx_model=brightness_graph(channels),
        preprocessing={"columns": [], "outputs": {"score": "score"}, "threshold": threshold},
        manifest={"family": "vision", "name": name},
    )
    sign_bundle_ed25519(directory, key.private_pem)
    return zip_bundle(directory).read_bytes()


def drop_images(folder: Path, n: int, seed: int) -> list[str]:
    """Colour camera images (Korean names, settled mtimes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        name = f"부품_{seed}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
        os.utime(folder / name, (PAST, PAST))
        names.append(name)
    return names


@pytest.fixture
def agent_home(tmp_path: Path) -> tuple[Path, HubSigningKey]:
    home = tmp_path / "agent"
    home.mkdir()
    key = load_or_create_hub_key(tmp_path / "hub")
    save_identity(
        home,
        Identity(
            device_id="edge_test",
            name="검사기",
            hub_url="http://127.0.0.1:9",  # nothing listens: the update needs no hub once installed
            credential="axd_x",
            hub_public_key=key.public_pem.decode(),
        ),
    )
    save_config(home, AgentConfig(watch_folder="camera", watch_asset="press-1", watch_settle_s=0.2))
    return home, key


def install(home: Path, key: HubSigningKey, archive: bytes) -> str:
    sha = hashlib.sha256(archive).hexdigest()
    BundleSlots(home, key.public_pem).install(archive, sha)
    return sha


def test_a_vision_bundle_failing_on_the_cameras_images_is_never_switched_in(
    agent_home: tuple[Path, HubSigningKey], tmp_path: Path
) -> None:
    home, key = agent_home
    slots = BundleSlots(home, key.public_pem)
    first = install(home, key, signed_archive(tmp_path, key, "colour_v1", "c", 200.0))
    slots.begin_swap(first)
    slots.commit_swap()
    drop_images(home / "camera", 3, seed=1)
    grey_only = install(home, key, signed_archive(tmp_path, key, "grey_v2", 1, 200.0))

    agent = Agent(home)
    # the heartbeat's answer announces the update; the bundle is already stored, so no download
    agent._apply({"bundle": {"sha256": grey_only, "rollout_id": "rollout_1"}})
    assert slots.current_sha == first and not (slots.root / SWAP_FILE).exists()
    assert grey_only in agent.failed_bundles
    [report] = agent.bundle_reports
    assert report["outcome"] == "rolled_back" and report["rollout_id"] == "rollout_1"
    assert report["reason"].startswith("the bundle fails on the image 부품_1_")
    agent._apply({"bundle": {"sha256": grey_only, "rollout_id": "rollout_1"}})  # not tried twice
    assert len(agent.bundle_reports) == 1

    # the old bundle inspects the next parts
    later = drop_images(home / "camera", 2, seed=2)
    agent.run(duration_s=2.5)
    buffer = Buffer(home / "buffer.db")
    bundles = {}
    while (batch := buffer.next_batch()) is not None:
        if batch.kind == RESULTS_KIND:
            bundles.update({r["file"]: r["bundle_sha256"] for r in decode_events(batch.payload)})
        buffer.ack(batch)
    buffer.close()
    assert set(later) <= set(bundles) and set(bundles.values()) == {first}


def test_a_vision_bundle_waits_for_an_image_then_passes_its_check(
    agent_home: tuple[Path, HubSigningKey], tmp_path: Path
) -> None:
    home, key = agent_home
    slots = BundleSlots(home, key.public_pem)
    agent = Agent(home)
    sha = install(home, key, signed_archive(tmp_path, key, "colour_v1", "c", 200.0))
    # nothing in the folder yet: not switched, not given up on
    agent._apply({"bundle": {"sha256": sha, "rollout_id": None}})
    assert slots.current_sha is None and sha not in agent.failed_bundles and not agent.bundle_reports
    assert "waits for an image" in str(agent.last_error)

    (home / "camera").mkdir()
    (home / "camera" / "잘림.png").write_bytes(b"\x89PNG\r\n")  # unreadable files are no sample
    agent._apply({"bundle": {"sha256": sha, "rollout_id": None}})
    assert slots.current_sha is None and not agent.bundle_reports

    drop_images(home / "camera", 1, seed=3)
    agent._apply({"bundle": {"sha256": sha, "rollout_id": None}})
    assert slots.current_sha == sha and not (slots.root / SWAP_FILE).exists()
    assert agent.bundle_reports == [{"sha256": sha, "rollout_id": None, "outcome": "active"}]
