"""``axhub bench soak --minutes N``: a steady MQTT stream through broker restarts and worker kills.

Method:

1. A private Mosquitto (persistence on, its own port; the system broker is never touched)
   and ``axhub run ingest`` as a child process with its own ``AXHUB_HOME``.
2. A gateway publishes ``--rate`` readings/s (QoS 1, persistent session, riding out broker
   outages); each reading's timestamp is its publish time (ms, unique per machine/signal).
3. On a schedule the broker is restarted (SIGTERM, then started again on the same port) and
   the worker is SIGKILLed and restarted ``--down-s`` later.
4. A monitor (another process's view of the same store: log + Parquet) polls every
   ``--poll-s``; a reading's latency is the poll time at which it first became visible minus
   its publish time (so the resolution is the poll interval). The worker's RSS is sampled.
5. After the stream stops, the store must hold exactly the readings sent: same keys, no
   row twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import typer

ASSETS = [f"line-{i:02d}" for i in range(20)]
WARM_S = 15.0


class _Gateway(threading.Thread):
    """Publishes at a steady rate; ``sent`` counts readings handed to paho (all are confirmed
    by the broker before the end: ``finish`` waits for every PUBACK)."""

    def __init__(self, port: int, rate: int, per_message: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        super().__init__(daemon=True, name="soak-gateway")
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"soak-gw-{uuid.uuid4().hex[:6]}", clean_session=False
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.rate, self.per_message = rate, per_message
        self.stop = threading.Event()
        self.infos: list[Any] = []
        self.sent = 0
        self.last_ms = 0

    def run(self) -> None:
        rng = np.random.default_rng(5)
        msgs_per_s = self.rate / self.per_message
        started = time.monotonic()
        k = 0
        while not self.stop.is_set():
            due = started + k / msgs_per_s
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            while not self.client.is_connected() and not self.stop.is_set():
                time.sleep(0.02)  # broker down: the gateway holds its data, then catches up
            if self.stop.is_set():
                break
            # One timestamp per tick, strictly increasing: keys never collide.
            ts = max(int(time.time() * 1000), self.last_ms + 1) if k % len(ASSETS) == 0 else self.last_ms
            self.last_ms = ts
            asset = ASSETS[k % len(ASSETS)]
            values = np.round(rng.normal(50, 5, self.per_message), 3)
            rows = [{"signal": f"s{j}", "ts": ts, "value": float(values[j])} for j in range(self.per_message)]
            self.infos.append(self.client.publish(f"soak/{asset}/batch", json.dumps(rows), qos=1))
            self.sent += self.per_message
            k += 1
            if k % 5000 == 0:  # keep only what the broker has not confirmed yet (bounded memory)
                self.infos = [info for info in self.infos if not info.is_published()]

    def finish(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while not all(info.is_published() for info in self.infos) and time.monotonic() < deadline:
            time.sleep(0.2)  # paho resends what the broker had not confirmed before a restart
        ok = all(info.is_published() for info in self.infos)
        self.client.disconnect()
        self.client.loop_stop()
        return ok


class _Worker:
    """``axhub run ingest`` as a child process."""

    def __init__(self, config: Path, home: Path) -> None:
        self.config, self.home = config, home
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "worker.log"
        self.starts = 0
        self.started_at = 0.0

    def start(self) -> None:
        env = {**os.environ, "AXHUB_HOME": str(self.home), "OMP_NUM_THREADS": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "axhub.cli.main", "run", "ingest", "--config", str(self.config)),
                    *("--flush-ms", "100", "--stats-every", "0"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self.started_at = time.monotonic()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_mb(self) -> float | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


def _org_id(home: Path, slug: str, timeout: float = 60.0) -> str:
    from axhub.core.settings import Settings
    from axhub.store.db import Database
    from axhub.store.platform import org_by_slug

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = Database(Settings(home=home).database_url)
        try:
            with db.session() as session:
                org = org_by_slug(session, slug)
                if org is not None:
                    return str(org.id)
        except Exception:  # the worker may still be creating its database
            pass
        finally:
            db.dispose()
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not create organisation {slug!r}; see {home / 'worker.log'}")


class _Monitor:
    """Polls the store as another process would, recording when readings become visible."""

    def __init__(self, root: Path, org: str) -> None:
        from axhub.store.timeseries import TimeSeriesStore

        self.store = TimeSeriesStore(root)
        self.org = org
        self.seen: dict[str, int] = {}
        self.latencies: list[float] = []

    def poll(self) -> None:
        import pandas as pd

        now = time.time()
        for asset in ASSETS:
            start = self.seen.get(asset)
            since = None if start is None else pd.Timestamp(start + 1, unit="us", tz="UTC")
            frame = self.store.query(self.org, asset, start=since)
            if frame.empty:
                continue
            ts_us = frame["ts"].dt.as_unit("us").astype("int64").to_numpy()
            self.latencies.extend((now - ts_us / 1e6).tolist())
            self.seen[asset] = int(ts_us.max())


def run(
    minutes: float,
    rate: int,
    per_message: int,
    broker_every: float,
    kill_every: float,
    down_s: float,
    poll_s: float,
) -> dict[str, Any]:
    import yaml

    from axhub.bench._broker import MosquittoBroker

    workdir = Path(tempfile.mkdtemp(prefix="axhub-soak-"))
    home = workdir / "home"
    home.mkdir()
    events: list[str] = []
    rss: list[tuple[float, int, float, float]] = []  # (t, life, seconds into the life, MB)
    with MosquittoBroker(workdir / "broker") as broker:
        config = workdir / "mapping.yaml"
        mqtt_cfg = {
            "port": broker.port,
            "version": "5",
            "client_id": "soak-ingest",
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
            "topics": [{"topic": "soak/{asset}/batch"}],
        }
        config.write_text(yaml.safe_dump({"org": "soak", "mqtt": mqtt_cfg}))
        worker = _Worker(config, home)
        worker.start()
        org = _org_id(home, "soak")
        time.sleep(3)  # the worker's session must exist before the stream starts
        monitor = _Monitor(home / "data" / "timeseries", org)
        gateway = _Gateway(broker.port, rate, per_message)
        gateway.start()
        started = time.monotonic()
        end = started + minutes * 60
        next_broker = started + broker_every
        next_kill = started + kill_every
        next_rss = started
        last_poll = started
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_broker:
                    broker.restart()
                    events.append(f"{now - started:.0f}s broker restarted")
                    next_broker += broker_every
                if now >= next_kill:
                    worker.kill()
                    events.append(f"{now - started:.0f}s worker SIGKILLed")
                    time.sleep(down_s)
                    worker.start()
                    next_kill += kill_every
                if now >= next_rss:
                    mb = worker.rss_mb()
                    if mb is not None:
                        into = round(now - worker.started_at, 1)
                        rss.append((round(now - started, 1), worker.starts, into, mb))
                    next_rss += 5
                if now - last_poll >= poll_s:
                    monitor.poll()
                    last_poll = now
                time.sleep(0.05)
            gateway.stop.set()
            gateway.join(10)
            confirmed = gateway.finish()
            drain_deadline = time.monotonic() + 120
            stored = monitor.store.count(org)
            while stored < gateway.sent and time.monotonic() < drain_deadline:
                monitor.poll()
                time.sleep(poll_s)
                stored = monitor.store.count(org)
            monitor.poll()
            drained_s = time.monotonic() - (end if end < time.monotonic() else time.monotonic())
        finally:
            worker.stop()
        rows = duplicates = 0
        for asset in ASSETS:
            frame = monitor.store.query(org, asset)
            rows += len(frame)
            duplicates += len(frame) - len(frame.drop_duplicates(["signal", "ts"]))
        monitor.store.close()
    lat = np.asarray(monitor.latencies)
    # RSS once a life is past its start-up (imports, first connections): WARM_S seconds in.
    lives: dict[int, list[float]] = {}
    for _t, life, into, mb in rss:
        if into >= WARM_S:
            lives.setdefault(life, []).append(round(mb, 1))
    return {
        "minutes": minutes,
        "rate": rate,
        "per_message": per_message,
        "sent": gateway.sent,
        "all_confirmed_by_broker": confirmed,
        "stored": stored,
        "rows_returned": rows,
        "duplicates": duplicates,
        "drain_s": drained_s,
        "latency_s": {
            q: float(np.percentile(lat, p)) if len(lat) else float("nan")
            for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "rss_samples": rss,
        "rss_warm_by_life": {str(k): v for k, v in lives.items()},
        "events": events,
        "workdir": str(workdir),
    }


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("soak")
    def soak(
        minutes: float = typer.Option(10.0, help="How long the stream runs."),
        rate: int = typer.Option(2000, help="Readings/s the gateway publishes."),
        per_message: int = typer.Option(10, help="Readings per MQTT message."),
        broker_every: float = typer.Option(60.0, help="Restart the broker every N seconds."),
        kill_every: float = typer.Option(45.0, help="SIGKILL the ingest worker every N seconds."),
        down_s: float = typer.Option(2.0, help="Seconds the worker stays dead."),
        poll_s: float = typer.Option(0.25, help="Monitor poll interval (latency resolution)."),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="Write bench-results/ and docs/benchmarks.md."
        ),
        out: Path | None = typer.Option(None, help="JSON output (default $AXHUB_HOME/bench/soak.json)."),
    ) -> None:
        """Readings sent vs stored, latency and worker RSS through broker restarts and SIGKILLs."""
        import shutil

        from axhub.bench.report import BenchResult, save_run

        load_before = os.getloadavg()[0]
        r = run(minutes, rate, per_message, broker_every, kill_every, down_s, poll_s)
        load_after = os.getloadavg()[0]
        shutil.rmtree(r.pop("workdir"), ignore_errors=True)
        lat = r["latency_s"]
        lost = r["sent"] - r["stored"]
        warm = r["rss_warm_by_life"]
        longest = max(warm.values(), key=len) if warm else []
        rows = [
            {"measure": "readings sent (confirmed by the broker)", "value": r["sent"], "target": ""},
            {"measure": "readings stored", "value": r["stored"], "target": "= sent"},
            {"measure": "lost", "value": lost, "target": "0"},
            {"measure": "stored twice", "value": r["duplicates"], "target": "0"},
            {"measure": "visible latency p50 (s)", "value": round(lat["p50"], 2), "target": ""},
            {"measure": "visible latency p95 (s)", "value": round(lat["p95"], 2), "target": ""},
            {"measure": "visible latency p99 (s)", "value": round(lat["p99"], 2), "target": ""},
            {"measure": "visible latency max (s)", "value": round(lat["max"], 2), "target": ""},
            {
                "measure": f"worker RSS, longest life from {WARM_S:g} s in: first → last (max) MB",
                "value": f"{longest[0]:.0f} → {longest[-1]:.0f} ({max(longest):.0f})" if longest else "n/a",
                "target": "flat",
            },
        ]
        notes = [
            f"{r['minutes']:g} min at {r['rate']:,} readings/s ({r['per_message']} per QoS 1 message, "
            "20 machines) into `axhub run ingest` (write-ahead log, compaction in the background); events: "
            + "; ".join(r["events"]),
            f"Latency = first poll (every {poll_s:g} s, from another process reading log + Parquet) at "
            "which a reading was visible, minus its publish time; it includes the outages (a reading "
            "published while the worker is dead waits for the restart).",
            f"RSS sampled every 5 s, from {WARM_S:g} s into each worker life (MB): {warm}.",
            f"2 cores shared with other jobs: 1-min load average {load_before:.1f} before, "
            f"{load_after:.1f} after.",
        ]
        save_run(
            BenchResult(
                name="soak",
                title="Soak: MQTT stream through broker restarts and worker SIGKILLs",
                dataset=f"synthetic gateway stream, {r['rate']:,} readings/s",
                split="n/a",
                rows=rows,
                notes=notes,
                extra=r,
            ),
            update_docs=update_docs,
            out=out,
        )
        if lost or r["duplicates"]:
            raise typer.Exit(1)
