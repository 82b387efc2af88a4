"""``axhub bench opcua`` at a tiny scale (asyncua server, 20 tags): every run counts right."""

from __future__ import annotations

from pathlib import Path

import pytest

from axhub.bench.opcua import _row, run, run_bare_client


@pytest.mark.slow  # three server processes, ~20 s
def test_bench_runs_store_and_receive_every_change(tmp_path: Path) -> None:
    ours = run(20, 5, 1.0, tmp_path / "ours", server_kind="asyncua")
    assert ours["server_changes"] >= 20 * 5
    assert ours["stored"] == ours["server_changes"]  # durable, initial values not counted
    assert ours["dead_letters"] == 0
    assert 0 < ours["lag_p50_s"] < 10

    per_change = run(20, 5, 1.0, tmp_path / "before", server_kind="asyncua", bulk_decode=False)
    assert per_change["stored"] == per_change["server_changes"]

    bare = run_bare_client(20, 5, 1.0, tmp_path / "bare", server_kind="asyncua")
    assert bare["received"] == bare["server_changes"]
    row = _row(20, 5, "x", ours["stored"], ours)
    assert row["of changes %"] == 100.0 and row["target"] == 100
