"""Deleting time series (issue 12, finding 9): one signal's or a whole machine's readings, from
Parquet and from the write-ahead log, against a concurrent writer process and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from axhub.core.readings import make_batch
from axhub.store import wal
from axhub.store.timeseries import US_PER_DAY, TimeSeriesStore

T0_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
SRC = Path(__file__).resolve().parents[1] / "src"


def _values(store: TimeSeriesStore, org: str, asset: str) -> dict[tuple[str, int], float]:
    frame = store.query(org, asset)
    ts = frame["ts"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64")
    return {(s, int(t)): float(v) for s, t, v in zip(frame["signal"], ts, frame["value"], strict=True)}


def _days(asset: str, signals: list[str], days: int, per_day: int) -> object:
    """``per_day`` readings of each signal on each of ``days`` days (values tell them apart)."""
    ts = T0_US + np.concatenate([d * US_PER_DAY + np.arange(per_day) * 1_000_000 for d in range(days)])
    rows = [(s, t, i * 1000.0 + k) for i, s in enumerate(signals) for k, t in enumerate(ts)]
    return make_batch(asset, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def test_deleting_one_signal_from_parquet_keeps_the_others_exactly(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path)
    store.write("acme", _days("m1", ["온도", "vib"], days=3, per_day=50))
    store.write("acme", _days("m2", ["온도"], days=1, per_day=10))
    store.compact("acme")  # merged files with rollups: both are rewritten without the signal
    before = _values(store, "acme", "m1")
    assert store.delete_signal("acme", "m1", "온도") == 150
    after = _values(store, "acme", "m1")
    assert after == {k: v for k, v in before.items() if k[0] == "vib"}
    assert store.list_signals("acme", "m1") == ["vib"]
    assert store.count("acme", "m2") == 10  # another machine's signal of that name is untouched
    hourly = store.query("acme", "m1", interval="1h")
    assert set(hourly["signal"]) == {"vib"}  # rollups too
    assert store.delete_signal("acme", "m1", "온도") == 0  # again: nothing left, no error
    store.write("acme", _days("m1", ["온도"], days=1, per_day=3))  # a new series starts empty
    assert store.count("acme", "m1") == 150 + 3
    store.close()


def test_deleting_from_the_log_before_it_is_compacted(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)  # nothing compacts on its own
    store.append("acme", _days("m1", ["a", "b"], days=2, per_day=20))
    store.append("acme", _days("m2", ["a"], days=1, per_day=5))
    assert store.delete_signal("acme", "m1", "a") == 40
    assert {k[0] for k in _values(store, "acme", "m1")} == {"b"}
    assert store.delete_asset("acme", "m1") == 40
    store.close()
    reopened = TimeSeriesStore(tmp_path)  # another process, later: nothing comes back
    reopened.compact("acme")
    assert reopened.count("acme", "m1") == 0 and reopened.count("acme", "m2") == 5
    reopened.append("acme", _days("m1", ["a"], days=1, per_day=3))  # same name, new machine
    assert reopened.count("acme", "m1") == 3
    reopened.close()


_WRITER = """
import sys, time
from pathlib import Path
from axhub.core.readings import make_batch
from axhub.store.timeseries import TimeSeriesStore

root, t0 = Path(sys.argv[1]), int(sys.argv[2])
store = TimeSeriesStore(root, wal_max_age_s=0.3)  # seals and compacts in the background, as a worker
seq = 0
while True:
    seq += 1
    batch = make_batch("m1", ["a", "b"], [t0 + seq * 1_000_000] * 2, [float(seq), float(seq)])
    sent = time.time()
    store.append("acme", batch)
    print(seq, sent, time.time(), flush=True)  # acknowledged: durable in the log
    time.sleep(0.005)
"""


class _Acks:
    """The writer's acknowledgements: seq -> (append began, append returned), wall clock."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.times: dict[int, tuple[float, float]] = {}

    def until(self, done: Callable[[int, float], bool]) -> None:
        assert self.proc.stdout is not None
        while True:
            seq, sent, acked = self.proc.stdout.readline().split()
            self.times[int(seq)] = (float(sent), float(acked))
            if done(int(seq), float(sent)):
                return

    def acked_before(self, moment: float) -> set[int]:
        return {s for s, (_, acked) in self.times.items() if acked < moment}

    def sent_after(self, moment: float) -> set[int]:
        return {s for s, (sent, _) in self.times.items() if sent > moment}


def _seqs(store: TimeSeriesStore, sig: str) -> list[int]:
    return sorted((t - T0_US) // 1_000_000 for s, t in _values(store, "acme", "m1") if s == sig)


@pytest.mark.slow
def test_a_delete_during_a_live_stream_leaves_nothing_sent_before_it(tmp_path: Path) -> None:
    """A separate process appends (and compacts) all the time; what it acknowledged before a
    delete began is gone for good, what it began sending after the delete returned is kept."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), str(T0_US)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        text=True,
    )
    acks = _Acks(proc)
    store = TimeSeriesStore(tmp_path)
    try:
        acks.until(lambda seq, _: seq >= 150)  # long enough for several seals and compactions
        began = time.time()
        store.delete_signal("acme", "m1", "a")
        returned = time.time()
        acks.until(lambda _, sent: sent > returned + 0.3)
        a_now = set(_seqs(store, "a"))
        assert not a_now & acks.acked_before(began)
        assert acks.sent_after(returned) <= a_now
        assert set(_seqs(store, "b")) >= set(acks.times)  # b untouched

        began = time.time()
        store.delete_asset("acme", "m1")
        returned = time.time()
        acks.until(lambda _, sent: sent > returned + 0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    store.compact("acme")  # whatever the killed writer left in the log, compacted
    for sig in "ab":
        now = _seqs(store, sig)
        assert not set(now) & acks.acked_before(began), sig  # never comes back
        assert acks.sent_after(returned) <= set(now), sig  # the new machine's readings are kept
        assert len(now) == len(set(now))
    store.close()


_DELETER = """
import sys
from pathlib import Path
from axhub.store.timeseries import TimeSeriesStore
store = TimeSeriesStore(Path(sys.argv[1]))
print("go", flush=True)
store.delete_signal("acme", "m1", "a")
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_a_signal_delete_leaves_each_partition_whole(tmp_path: Path) -> None:
    store = TimeSeriesStore(tmp_path, wal_max_age_s=3600)
    store.write("acme", _days("m1", ["a", "b"], days=40, per_day=200))
    store.append("acme", _days("m1", ["a", "b"], days=2, per_day=5))  # some of it in the log
    store.close()
    reference = {k: v for k, v in _values(TimeSeriesStore(tmp_path), "acme", "m1").items()}
    b_rows = {k: v for k, v in reference.items() if k[0] == "b"}
    killed_mid = 0
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _DELETER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(SRC)},
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        check = TimeSeriesStore(tmp_path)
        now = _values(check, "acme", "m1")
        # b is exactly as it was; a is, per day, either all there or all gone
        assert {k: v for k, v in now.items() if k[0] == "b"} == b_rows
        a_days: dict[int, int] = {}
        for sig, t in now:
            if sig == "a":
                a_days[(t - T0_US) // US_PER_DAY] = a_days.get((t - T0_US) // US_PER_DAY, 0) + 1
        assert all(n in (200, 205) for n in a_days.values()), a_days
        killed_mid += 0 < len(a_days) < 40
        check.close()
    final = TimeSeriesStore(tmp_path)
    final.delete_signal("acme", "m1", "a")  # the retry finishes the job
    assert _values(final, "acme", "m1") == b_rows
    assert not list(wal.list_segments(tmp_path / "org=acme" / wal.WAL_DIR))[:-1]
    final.close()
    assert killed_mid >= 1, "no kill landed mid-delete; make the data bigger"


def test_the_cli_deletes_a_signal_then_the_machine_and_asks_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from typer.testing import CliRunner

    from axhub.api.bootstrap import create_user
    from axhub.cli.main import app
    from axhub.core.settings import get_settings
    from axhub.store.db import Database
    from axhub.store.platform import org_by_slug
    from axhub.store.scoped import OrgScope

    monkeypatch.setenv("AXHUB_HOME", str(tmp_path))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # later tests get their own settings
    settings = get_settings()
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()
    create_user(db, "hanbit", "admin@hanbit.example", "correct-horse-battery", "admin")
    with db.session() as s:
        org = org_by_slug(s, "hanbit")
        scope = OrgScope(s, org.id)
        scope.ensure_asset(scope.ensure_site("창원"), "프레스", slug="press-1")
        org_id = org.id
    db.dispose()
    store = TimeSeriesStore(settings.timeseries_root)
    store.append(org_id, _days("press-1", ["온도", "압력"], days=1, per_day=4))
    store.close()
    run = CliRunner().invoke
    out = run(
        app, ["series", "delete", "press-1", "--signal", "온도", "--org", "hanbit", "--yes", "--lang", "ko"]
    )
    assert out.exit_code == 0 and "4건" in out.output, out.output
    assert {k[0] for k in _values(TimeSeriesStore(settings.timeseries_root), org_id, "press-1")} == {"압력"}
    out = run(app, ["series", "delete", "press-1", "--org", "hanbit", "--lang", "en"], input="n\n")
    assert out.exit_code == 1 and "nothing deleted" in out.output
    assert TimeSeriesStore(settings.timeseries_root).count(org_id, "press-1") == 4
    out = run(app, ["series", "delete", "press-1", "--org", "hanbit", "--lang", "en"], input="y\n")
    assert out.exit_code == 0 and "deleted 4 readings" in out.output
    assert TimeSeriesStore(settings.timeseries_root).count(org_id, "press-1") == 0
    out = run(app, ["series", "delete", "nope", "--org", "hanbit", "--lang", "en"])
    assert out.exit_code == 2 and "no machine 'nope'" in out.output
