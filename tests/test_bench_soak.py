"""The soak's judgements: OPC UA change accounting and the RSS flatness verdict (synthetic)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np

from axhub.bench.soak import longest_life
from axhub.bench.soak_checks import bridged_kills, count_opcua, resumed_times, rss_verdict, subscribed_times

TAGS = 3


def _ticks(start_s: float, end_s: float) -> list[int]:
    """10 Hz ticks (ms) in [start_s, end_s)."""
    return [round(float(t) * 1000) for t in np.arange(start_s, end_s, 0.1)]


def test_changes_while_subscribed_are_stored_and_reconnect_gaps_are_not_loss() -> None:
    # Server life 1: ticks 100-110 s, subscribed at 100.5; stopped at 110; life 2: ticks 112-120,
    # subscribed again at 114 (the client was reconnecting from 112 to 114).
    ticks = _ticks(100, 110) + _ticks(112, 120)
    stored = {t: TAGS for t in ticks if 100.5 <= t / 1000 < 110 or t / 1000 >= 114}
    stored[113900] = TAGS  # the current value the server sends on subscribing
    r = count_opcua(ticks, TAGS, stored, subscribed=[100.5, 114.0], server_stops=[110.0, 120.0])
    assert r["changes_made"] == len(ticks) * TAGS
    assert r["lost_while_subscribed"] == 0
    reconnecting = [t for t in ticks if t / 1000 < 100.5 or 112 <= t / 1000 < 114]
    assert r["made_while_not_subscribed"] == len(reconnecting) * TAGS
    assert r["stored_of_those_as_current_value"] == TAGS
    assert r["not_delivered_by_server"] == (len(reconnecting) - 1) * TAGS
    assert r["stored"] == r["stored_of_those"] + r["stored_of_those_as_current_value"]
    assert r["stored_not_made"] == 0


def test_losses_are_split_by_what_came_next() -> None:
    ticks = _ticks(0, 30)
    stored = {t: TAGS for t in ticks}
    stored[9_800] = 0  # 0.2 s before the server stop at 10 s: not yet published
    stored[19_900] = 1  # 0.1 s before the SIGKILL at 20 s: in the worker's memory (2 lost)
    stored[5_000] = TAGS - 1  # in the middle of a subscribed stretch: a real loss
    r = count_opcua(ticks, TAGS, stored, subscribed=[0.0, 11.0, 21.0], server_stops=[10.0], kills=[20.0])
    assert r["lost_just_before_server_stop"] == TAGS
    assert r["lost_just_before_sigkill"] == TAGS - 1
    assert r["lost_otherwise"] == 1
    assert r["lost_while_subscribed"] == TAGS + (TAGS - 1) + 1


def test_a_kill_bridged_by_a_taken_over_subscription_is_no_gap() -> None:
    # SIGKILL at 10 s; the next worker resumed the subscription at 13 s: the server queued the
    # changes of 10-13 s, so they count as made while subscribed and must be stored. A second
    # kill at 20 s was followed by a fresh subscription (22 s): its gap is not loss.
    ticks = _ticks(0, 30)
    stored = {t: TAGS for t in ticks if not 20_000 <= t < 22_000}
    stored[10_500] = TAGS - 2  # lost in the bridged gap: a real loss
    r = count_opcua(
        ticks, TAGS, stored, subscribed=[0.0, 22.0], server_stops=[], kills=[10.0, 20.0], resumed=[13.0]
    )
    assert bridged_kills([10.0, 20.0], [0.0, 22.0], [13.0]) == {10.0}
    assert r["lost_while_subscribed"] == 2 and r["lost_otherwise"] == 2
    assert r["made_while_not_subscribed"] == 20 * TAGS  # 20.0-22.0 s only
    assert r["not_delivered_by_server"] == 20 * TAGS


def test_readings_the_server_never_made_are_flagged() -> None:
    ticks = _ticks(0, 1)
    stored = {t: TAGS for t in ticks}
    stored[123_456] = 2  # no such tick
    stored[ticks[0]] = TAGS + 1  # one tag twice
    r = count_opcua(ticks, TAGS, stored, subscribed=[0.0], server_stops=[])
    assert r["stored_not_made"] == 3
    assert r["lost_while_subscribed"] == 0


def test_subscribed_times_read_from_the_worker_log() -> None:
    log = (
        "2026-12-05 22:35:19,123 INFO axhub.ingest.connectors.opcua: OPC UA subscribed to 200 variables\n"
        "2026-12-05 22:35:20,000 WARNING axhub.ingest.connectors.opcua: OPC UA x: gone; retrying in 0.5s\n"
        "2026-12-05 22:35:25,500 INFO axhub.ingest.connectors.opcua: OPC UA subscribed to 200 variables\n"
    )
    got = subscribed_times(log)
    resumed = resumed_times(
        log
        + "2026-12-05 22:35:30,250 INFO axhub.ingest.connectors.opcua: OPC UA resumed subscription 7 to 200"
    )
    assert len(resumed) == 1 and math.isclose(resumed[0] - got[1], 4.75, abs_tol=1e-6)
    first = datetime(2026, 12, 5, 22, 35, 19).timestamp() + 0.123
    assert len(got) == 2
    assert math.isclose(got[0], first, abs_tol=1e-6)
    assert math.isclose(got[1] - got[0], 6.377, abs_tol=1e-6)


def test_rss_verdict_flat_growing_and_too_short() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0, 1200, 5.0)
    flat = 250 + rng.normal(0, 1.0, len(t))
    flat[:10] = 200  # start-up, left out by the warm-up
    v = rss_verdict(zip(t, flat, strict=True), warm_s=120, bound_mb_per_10min=3)
    assert v["verdict"] == "flat"
    assert abs(v["slope_mb_per_10min"]) < 1
    leak = 250 + t * (10 / 600)  # 10 MB per 10 min
    v = rss_verdict(zip(t, leak, strict=True), warm_s=120, bound_mb_per_10min=3)
    assert v["verdict"] == "grows"
    assert math.isclose(v["slope_mb_per_10min"], 10, rel_tol=1e-6)
    short = rss_verdict(zip(t[:40], flat[:40], strict=True), warm_s=120, bound_mb_per_10min=3)
    assert short["verdict"] == "not judged"


def test_longest_life_is_picked() -> None:
    rss = [(5.0, 1, 5.0, 200.0), (10.0, 2, 1.0, 210.0), (15.0, 2, 6.0, 211.0), (20.0, 2, 11.0, 212.0)]
    assert longest_life(rss) == [(1.0, 210.0), (6.0, 211.0), (11.0, 212.0)]


def test_the_ready_file_counts_only_once_complete(tmp_path: Path) -> None:
    from axhub.bench.opcua import read_ready_ns

    ready = tmp_path / "ready.json"
    assert read_ready_ns(ready) is None  # not there yet
    ready.write_text("")  # created, not yet written (the server's writeFileSync is not atomic)
    assert read_ready_ns(ready) is None
    ready.write_text('{"ns": 1}')
    assert read_ready_ns(ready) == 1
