"""``axhub bench soak --minutes N``: MQTT and OPC UA streams through broker restarts, OPC UA
server restarts and worker kills, with the worker's RSS judged over one long life.

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
6. OPC UA leg (``--opcua-tags``, node-opcua server ``tests/peers/opcua_bench_server.js``): the
   same worker process subscribes to the server's tags; the server is stopped and started
   again on the same port every ``--server-every`` seconds. The server logs every tick, so
   each change made is known; ``soak_checks.count_opcua`` splits them into made while the
   worker was subscribed (must be stored) and made while it was not (the server queues them
   for no one: "not delivered by the server", not loss).
7. Worker kills stop after ``--kill-until`` seconds, so the last worker life is long; its RSS
   slope (MB per 10 min, least squares from ``--rss-warm-s`` in) is judged against
   ``--rss-bound``, fixed before the run.
"""

from __future__ import annotations

import contextlib
import inspect
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

from axhub.bench._broker import stop_process
from axhub.bench.soak_checks import (
    bridged_kills,
    count_opcua,
    resumed_times,
    rss_verdict,
    subscribed_times,
)
from axhub.store.timeseries import TimeSeriesStore

ASSETS = [f"line-{i:02d}" for i in range(20)]
WARM_S = 15.0
# The worker's store merges a partition's small files once it has merge_files of them, one per
# log seal: the first merge (a one-time step in RSS, bounded by merge_max_rows) is this long
# into a life, plus a minute's margin. The RSS verdict fits from here; from EARLY_FIT_S it is
# shown too.
_STORE_DEFAULTS = inspect.signature(TimeSeriesStore.__init__).parameters
FIRST_MERGE_S = (
    float(_STORE_DEFAULTS["merge_files"].default) * float(_STORE_DEFAULTS["wal_max_age_s"].default) + 60.0
)
EARLY_FIT_S = 120.0


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
        self.kills: list[float] = []  # epoch s of each SIGKILL

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
            self.kills.append(time.time())
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 60)

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
    *,
    kill_until: float = 0.0,
    opcua_tags: int = 0,
    opcua_hz: float = 10.0,
    server_every: float = 0.0,
    server_down_s: float = 2.0,
) -> dict[str, Any]:
    import yaml

    from axhub.bench._broker import MosquittoBroker
    from axhub.bench.soak_opcua import OpcUaServer, stored_per_tick

    workdir = Path(tempfile.mkdtemp(prefix="axhub-soak-"))
    home = workdir / "home"
    home.mkdir()
    events: list[str] = []
    rss: list[tuple[float, int, float, float]] = []  # (t, life, seconds into the life, MB)
    opc = OpcUaServer(workdir / "opcua", opcua_tags, opcua_hz) if opcua_tags else None
    with contextlib.ExitStack() as stack, MosquittoBroker(workdir / "broker") as broker:
        if opc is not None:
            stack.callback(opc.stop)
            opc.start()  # before the worker: its first subscription finds the server up
        config = workdir / "mapping.yaml"
        mqtt_cfg = {
            "port": broker.port,
            "version": "5",
            "client_id": "soak-ingest",
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
            "topics": [{"topic": "soak/{asset}/batch"}],
        }
        mapping: dict[str, Any] = {"org": "soak", "mqtt": mqtt_cfg}
        if opc is not None:
            mapping["opcua"] = opc.mapping()
        config.write_text(yaml.safe_dump(mapping))
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
        next_kill = started + kill_every if kill_every > 0 else float("inf")
        last_kill = started + kill_until if kill_until > 0 else float("inf")
        next_server = started + server_every if opc is not None and server_every > 0 else float("inf")
        next_rss = started
        last_poll = started
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_broker:
                    broker.restart()
                    events.append(f"{now - started:.0f}s broker restarted")
                    next_broker += broker_every
                if now >= next_kill and now <= last_kill:
                    worker.kill()
                    events.append(f"{now - started:.0f}s worker SIGKILLed")
                    time.sleep(down_s)
                    worker.start()
                    next_kill += kill_every
                if opc is not None and now >= next_server:
                    opc.stop()
                    time.sleep(server_down_s)
                    opc.start()
                    events.append(f"{now - started:.0f}s OPC UA server restarted")
                    next_server += server_every
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
            if opc is not None:
                opc.stop()  # its last changes are on their way while MQTT drains
            gateway.join(10)
            confirmed = gateway.finish()
            drain_deadline = time.monotonic() + 120

            def mqtt_count() -> int:
                return sum(monitor.store.count(org, asset) for asset in ASSETS)

            stored = mqtt_count()
            while stored < gateway.sent and time.monotonic() < drain_deadline:
                monitor.poll()
                time.sleep(poll_s)
                stored = mqtt_count()
            monitor.poll()
            drained_s = time.monotonic() - (end if end < time.monotonic() else time.monotonic())
            time.sleep(2.0)  # OPC UA: the worker flushes every 100 ms; the server stopped above
        finally:
            worker.stop()
            if opc is not None:
                opc.stop()
        rows = duplicates = 0
        for asset in ASSETS:
            frame = monitor.store.query(org, asset)
            rows += len(frame)
            duplicates += len(frame) - len(frame.drop_duplicates(["signal", "ts"]))
        opcua: dict[str, Any] | None = None
        if opc is not None:
            per_tick, opc_dups = stored_per_tick(monitor.store, org, opc.assets())
            worker_log = worker.log.read_text(errors="replace")
            subs, resumed = subscribed_times(worker_log), resumed_times(worker_log)
            opcua = count_opcua(
                opc.ticks_ms(), opcua_tags, per_tick, subs, opc.stops, worker.kills, resumed=resumed
            )
            opcua.update(
                tags=opcua_tags,
                hz=opcua_hz,
                duplicates=opc_dups,
                server_lives=opc.lives,
                subscriptions=len(subs),
                resumed=len(resumed),
                kills=len(worker.kills),
                kills_bridged=len(bridged_kills(worker.kills, subs, resumed)),
            )
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
        "opcua": opcua,
        "kill_until": kill_until,
        "events": events,
        "workdir": str(workdir),
    }


def longest_life(rss: list[tuple[float, int, float, float]]) -> list[tuple[float, float]]:
    """(seconds into the life, MB) of the worker life with the most RSS samples."""
    lives: dict[int, list[tuple[float, float]]] = {}
    for _t, life, into, mb in rss:
        lives.setdefault(life, []).append((into, mb))
    return max(lives.values(), key=len) if lives else []


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("soak")
    def soak(
        minutes: float = typer.Option(10.0, help="How long the stream runs."),
        rate: int = typer.Option(2000, help="Readings/s the gateway publishes."),
        per_message: int = typer.Option(10, help="Readings per MQTT message."),
        broker_every: float = typer.Option(60.0, help="Restart the broker every N seconds."),
        kill_every: float = typer.Option(45.0, help="SIGKILL the ingest worker every N seconds (0 = never)."),
        kill_until: float = typer.Option(
            180.0,
            help="No SIGKILL after N seconds: the last worker life is long, for the RSS verdict (0 = never).",
        ),
        opcua_tags: int = typer.Option(200, help="OPC UA tags on the node-opcua server (0 = no OPC UA leg)."),
        opcua_hz: float = typer.Option(10.0, help="Changes per OPC UA tag per second."),
        server_every: float = typer.Option(
            75.0, help="Restart the OPC UA server every N seconds (0 = never)."
        ),
        server_down_s: float = typer.Option(2.0, help="Seconds the OPC UA server stays down."),
        rss_warm_s: float = typer.Option(
            FIRST_MERGE_S,
            help="RSS verdict: fit from this many seconds into a life (default: after the first merge).",
        ),
        rss_bound: float = typer.Option(
            3.0, help="RSS verdict: flat when the fitted slope is at most this many MB per 10 min."
        ),
        down_s: float = typer.Option(2.0, help="Seconds the worker stays dead."),
        poll_s: float = typer.Option(0.25, help="Monitor poll interval (latency resolution)."),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="Write bench-results/ and docs/benchmarks.md."
        ),
        out: Path | None = typer.Option(None, help="JSON output (default $AXHUB_HOME/bench/soak.json)."),
    ) -> None:
        """Sent vs stored, latency and worker RSS through broker and OPC UA server restarts and SIGKILLs."""
        import shutil

        from axhub.bench.report import BenchResult, save_run

        load_before = os.getloadavg()[0]
        r = run(
            minutes,
            rate,
            per_message,
            broker_every,
            kill_every,
            down_s,
            poll_s,
            kill_until=kill_until,
            opcua_tags=opcua_tags,
            opcua_hz=opcua_hz,
            server_every=server_every,
            server_down_s=server_down_s,
        )
        load_after = os.getloadavg()[0]
        shutil.rmtree(r.pop("workdir"), ignore_errors=True)
        lat = r["latency_s"]
        lost = r["sent"] - r["stored"]
        warm = r["rss_warm_by_life"]
        longest = max(warm.values(), key=len) if warm else []
        verdict = rss_verdict(longest_life(r["rss_samples"]), rss_warm_s, rss_bound)
        r["rss_verdict"] = verdict
        # Also from EARLY_FIT_S in, the first merge's one-time step included: shown, not judged.
        early = rss_verdict(longest_life(r["rss_samples"]), EARLY_FIT_S, rss_bound)
        r["rss_early"] = early
        opc = r["opcua"]
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
            {
                "measure": (
                    f"worker RSS slope, longest life ({verdict['span_s'] / 60:.1f} min fitted from "
                    f"{rss_warm_s:g} s in), MB per 10 min ± 95 % CI"
                ),
                "value": (
                    f"{verdict['slope_mb_per_10min']:+.2f} ± {verdict['ci95_mb_per_10min']:.2f}: "
                    f"{verdict['verdict']}"
                ),
                "target": f"within ±{rss_bound:g} (flat)",
            },
            {
                "measure": (
                    f"worker RSS slope from {EARLY_FIT_S:g} s in (start-up left out, the first merge's "
                    f"one-time step in), MB per 10 min ± 95 % CI"
                ),
                "value": f"{early['slope_mb_per_10min']:+.2f} ± {early['ci95_mb_per_10min']:.2f}",
                "target": "(shown)",
            },
        ]
        if opc is not None:
            rows += [
                {"measure": "OPC UA: changes the server made", "value": opc["changes_made"], "target": ""},
                {
                    "measure": "OPC UA: made while the worker was subscribed",
                    "value": opc["made_while_subscribed"],
                    "target": "",
                },
                {"measure": "OPC UA: of those, stored", "value": opc["stored_of_those"], "target": "= made"},
                {"measure": "OPC UA: of those, lost", "value": opc["lost_while_subscribed"], "target": "0"},
                {
                    "measure": "OPC UA: lost, made < 0.5 s before a server stop (not yet published)",
                    "value": opc["lost_just_before_server_stop"],
                    "target": "",
                },
                {
                    "measure": "OPC UA: lost, made < 0.5 s before a worker SIGKILL (not yet durable)",
                    "value": opc["lost_just_before_sigkill"],
                    "target": "0",
                },
                {"measure": "OPC UA: lost at other times", "value": opc["lost_otherwise"], "target": "0"},
                {
                    "measure": (
                        "OPC UA: made while no subscription was alive (server down or restarting; "
                        "worker dead and its subscription not taken over)"
                    ),
                    "value": opc["made_while_not_subscribed"],
                    "target": "",
                },
                {
                    "measure": "OPC UA: of those, not delivered by the server (queued nowhere)",
                    "value": opc["not_delivered_by_server"],
                    "target": "(not loss)",
                },
                {
                    "measure": "OPC UA: worker SIGKILLs after which the subscription was taken over",
                    "value": f"{opc['kills_bridged']} of {opc['kills']}",
                    "target": "",
                },
                {"measure": "OPC UA: stored twice", "value": opc["duplicates"], "target": "0"},
            ]
        notes = [
            f"{r['minutes']:g} min at {r['rate']:,} readings/s ({r['per_message']} per QoS 1 message, "
            "20 machines) into `axhub run ingest` (write-ahead log, compaction in the background); events: "
            + "; ".join(r["events"]),
            f"Latency = first poll (every {poll_s:g} s, from another process reading log + Parquet) at "
            "which a reading was visible, minus its publish time; it includes the outages (a reading "
            "published while the worker is dead waits for the restart).",
            f"RSS sampled every 5 s, from {WARM_S:g} s into each worker life (MB): {warm}. Verdict: "
            f"least-squares slope over the longest life from {rss_warm_s:g} s in (start-up and the store's "
            f"first merge of small files, due {FIRST_MERGE_S - 60:g} s into a life, left out: that merge "
            "is a one-time step of about 10 MB, bounded by the merge's row cap), flat when |slope| ≤ "
            f"{rss_bound:g} MB per 10 min (bound fixed before the run: a leak at that rate would be "
            "~430 MB a day); not judged when under 5 min remain after the warm-up.",
            f"2 cores shared with other jobs: 1-min load average {load_before:.1f} before, "
            f"{load_after:.1f} after.",
        ]
        save_run(
            BenchResult(
                name="soak",
                title="Soak: MQTT and OPC UA through broker and server restarts and worker SIGKILLs",
                dataset=f"synthetic gateway stream, {r['rate']:,} readings/s",
                split="n/a",
                rows=rows,
                notes=notes,
                extra=r,
            ),
            update_docs=update_docs,
            out=out,
        )
        if opc is not None:
            notes.insert(
                1,
                f"OPC UA leg: node-opcua server (`tests/peers/opcua_bench_server.js`, its own process) with "
                f"{opc['tags']} tags x {opc['hz']:g} Hz, stopped (SIGTERM) and started on the same port "
                f"{opc['server_lives'] - 1} times ({server_down_s:g} s down), read by the same `axhub run "
                f"ingest` process; {opc['subscriptions']} subscriptions in all. The server logs every "
                "tick, so each change made is known; a change counts as made while subscribed when the "
                "worker's last event before it was an 'OPC UA subscribed' log line, not a server stop or "
                "a SIGKILL. An OPC UA subscription belongs to one client session: changes made while the "
                "client reconnects are queued nowhere, so the server never sends them (on subscribing it "
                f"sends each tag's current value: {opc['stored_of_those_as_current_value']:,} of them "
                "stored). Losses while subscribed are split by when the change was made: in the last "
                "0.5 s before a server stop (the server died before publishing it), in the last 0.5 s "
                "before a SIGKILL (received but still in the worker's memory: OPC UA has no "
                "acknowledgement that would make the server send it again, so this is a real loss), "
                "or at other times.",
            )
        if lost or r["duplicates"] or (opc is not None and (opc["duplicates"] or opc["stored_not_made"])):
            raise typer.Exit(1)
