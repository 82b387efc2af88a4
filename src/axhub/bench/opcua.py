"""``axhub bench opcua``: subscribe to 1,000 OPC UA tags changing at 10 Hz, into the store.

An OPC UA server in its own process changes every tag ``--hz`` times a second (value and
source timestamp): by default an asyncua server; with ``--server node-opcua`` a node-opcua
server nobody on AX Hub wrote (``tests/peers/opcua_bench_server.js``, installed by
``scripts/peers.sh``). The AX Hub OPC UA source subscribes to all of them (publishing interval
100 ms) and the ingest worker writes them to the time-series store. Keeping up means: the
stored readings/s match the changes/s the server made, and the lag from a value's source
timestamp to its durable write stays flat (it does not grow over the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import typer


async def _serve(port: int, n_tags: int, hz: float, seconds: float, ready_file: str) -> None:
    from axhub.sim.live import LiveTag, OpcUaPlantServer

    tags = [LiveTag(f"line-{i // 100:02d}", f"tag{i % 100:03d}") for i in range(n_tags)]
    server = OpcUaPlantServer(tags, port=port)
    await server.start()
    Path(ready_file).write_text(json.dumps({"ns": server.ns}))
    while not Path(ready_file + ".go").exists():
        await asyncio.sleep(0.05)
    writes = 0
    late_ticks = 0
    started = time.monotonic()
    tick = 0
    from datetime import UTC, datetime

    while time.monotonic() - started < seconds:
        now = datetime.now(UTC)
        for k, tag in enumerate(tags):
            # (tick + 1): never the initial 0, which would be no change and not be sent
            await server.write(tag.asset, tag.signal, float((tick + 1) * 1000 + k), now)
        writes += len(tags)
        tick += 1
        delay = started + tick / hz - time.monotonic()
        if delay < 0:
            late_ticks += 1
        await asyncio.sleep(max(0.0, delay))
    elapsed = time.monotonic() - started
    Path(ready_file + ".done").write_text(
        json.dumps({"writes": writes, "seconds": elapsed, "late_ticks": late_ticks, "ticks": tick})
    )
    await asyncio.sleep(60.0)  # the last notifications go out until the bench ends this process
    await server.stop()


PEERS = Path(__file__).resolve().parents[3] / "tests" / "peers"


def read_ready_ns(ready: Path) -> int | None:
    """The namespace from a bench server's ready file; None until it is there and complete (the
    server creates the file before it has written it)."""
    try:
        return int(json.loads(ready.read_text())["ns"])
    except (OSError, ValueError, KeyError):
        return None


def _server_command(kind: str, port: int, n_tags: int, hz: float, seconds: float, ready: str) -> list[str]:
    if kind == "asyncua":
        return [
            sys.executable,
            "-c",
            f"import asyncio; from axhub.bench.opcua import _serve; "
            f"asyncio.run(_serve({port}, {n_tags}, {hz}, {seconds}, {ready!r}))",
        ]
    node = shutil.which("node")
    script = PEERS / "opcua_bench_server.js"
    if node is None or not (PEERS / "node_modules" / "node-opcua").is_dir() or not script.is_file():
        raise typer.BadParameter(
            "the node-opcua server needs Node.js and the npm peers: run scripts/peers.sh",
            param_hint="--server",
        )
    pki = str(Path(ready).parent / "pki")
    return [node, str(script), str(port), str(n_tags), str(hz), str(seconds), ready, pki]


@contextlib.contextmanager
def _server(
    kind: str, n_tags: int, hz: float, seconds: float, workdir: Path
) -> Iterator[tuple[int, list[str], Path]]:
    """A bench server in its own process: (port, NodeIds of its tags, its ready file)."""
    from axhub.bench._broker import free_port, wait_port

    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ready.json"
    env = {**os.environ, "NODE_PATH": str(PEERS / "node_modules")}
    server = subprocess.Popen(_server_command(kind, port, n_tags, hz, seconds, str(ready)), env=env)
    try:
        deadline = time.monotonic() + 120
        while (ns := read_ready_ns(ready)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if ns is None:
            raise RuntimeError("the OPC UA bench server did not start within 120 s")
        wait_port("127.0.0.1", port, 30)
        node_ids = [f"ns={ns};s=line-{i // 100:02d}.tag{i % 100:03d}" for i in range(n_tags)]
        yield port, node_ids, ready
    finally:
        server.terminate()
        server.wait(10)


def _run_server(ready: Path, received: Callable[[], int], drain_s: float = 15.0) -> dict[str, Any]:
    """Let the server change its tags; its own account of what it did, once it has finished
    and the client has taken what was still on its way (``received`` stops growing for 1.5 s,
    at most ``drain_s``): a loaded machine must not cut off the end of the run."""
    Path(f"{ready}.go").write_text("go")
    done = Path(f"{ready}.done")
    while not done.exists():
        time.sleep(0.1)
    finished = time.monotonic()
    last, quiet_since = received(), time.monotonic()
    while time.monotonic() - quiet_since < 1.5 and time.monotonic() - finished < drain_s:
        time.sleep(0.1)
        if (now := received()) != last:
            last, quiet_since = now, time.monotonic()
    result: dict[str, Any] = json.loads(done.read_text())
    result["drain_s"] = time.monotonic() - finished
    return result


def _lag_summary(lags: list[tuple[float, float]]) -> dict[str, float]:
    values = np.asarray([lag for _t, lag in lags]) if lags else np.asarray([np.nan])
    half = len(values) // 2
    return {
        "lag_p50_s": float(np.percentile(values, 50)),
        "lag_p99_s": float(np.percentile(values, 99)),
        "lag_first_half_s": float(np.median(values[: max(half, 1)])),
        "lag_second_half_s": float(np.median(values[half:])),
    }


def run_bare_client(
    n_tags: int,
    hz: float,
    seconds: float,
    workdir: Path,
    *,
    server_kind: str = "asyncua",
    queue_size: int = 100,
    publishing_interval_ms: int = 100,
) -> dict[str, Any]:
    """The reference: a plain asyncua client (its own subscription API, the way its docs show)
    that only receives and counts the changes, storing nothing: what Python + asyncua can
    take from this server on this machine."""
    from asyncua import Client, ua
    from asyncua.common.subscription import DataChangeEvent

    with _server(server_kind, n_tags, hz, seconds, workdir) as (port, node_ids, ready):
        subscribed = threading.Event()
        finished = threading.Event()
        counts = {"received": 0}
        lags: list[tuple[float, float]] = []

        async def client_main() -> None:
            client = Client(f"opc.tcp://127.0.0.1:{port}/axhub/", timeout=30)
            await client.connect()
            try:
                sub = await client.create_subscription(publishing_interval_ms, None, queue_maxsize=1_000_000)
                nodes = [client.get_node(n) for n in node_ids]
                for i in range(0, len(nodes), 500):
                    await sub.subscribe_data_change(
                        nodes[i : i + 500], queuesize=queue_size, sampling_interval=ua.Double(0)
                    )
                subscribed.set()

                async def consume() -> None:
                    window: list[float] = []
                    async for event in sub:  # asyncua's cheapest way in: no timeout per event
                        if not isinstance(event, DataChangeEvent):
                            continue
                        counts["received"] += 1
                        source = event.data.monitored_item.Value.SourceTimestamp
                        if source is not None:  # lag per 0.1 s of changes, as ours per written batch
                            now = time.time()
                            window.append(now - source.timestamp())
                            if len(window) >= max(1, int(n_tags * hz / 10)):
                                lags.append((now, float(np.median(window))))
                                window = []

                consumer = asyncio.create_task(consume())
                while not finished.is_set():
                    await asyncio.sleep(0.1)
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 2)

        thread = threading.Thread(target=lambda: asyncio.run(client_main()), name="bare-asyncua")
        thread.start()
        if not subscribed.wait(120):
            finished.set()
            raise RuntimeError("the bare asyncua client could not subscribe")
        done = _run_server(ready, lambda: counts["received"])
        finished.set()
        thread.join(30)
    return {
        "server_changes": done["writes"],
        "server_seconds": done["seconds"],
        "server_late_ticks": done["late_ticks"],
        "drain_s": done["drain_s"],
        "received": counts["received"] - n_tags,  # minus the initial value of every tag
        **_lag_summary(lags),
    }


def run(
    n_tags: int,
    hz: float,
    seconds: float,
    workdir: Path,
    *,
    server_kind: str = "asyncua",
    queue_size: int = 100,
    publishing_interval_ms: int = 100,
    bulk_decode: bool = True,
) -> dict[str, Any]:
    """AX Hub's OPC UA source and ingest worker, into the store through its write-ahead log
    (the sink ``axhub run ingest`` uses)."""
    from axhub.ingest.connectors.opcua import OpcUaSource
    from axhub.ingest.deadletter import DeadLetterStore
    from axhub.ingest.tag_mapping import OpcUaConfig
    from axhub.ingest.worker import IngestWorker
    from axhub.store.timeseries import TimeSeriesStore

    with _server(server_kind, n_tags, hz, seconds, workdir) as (port, node_ids, ready):
        nodes = [
            {"node": node_id, "asset": f"line-{i // 100:02d}", "signal": f"tag{i % 100:03d}"}
            for i, node_id in enumerate(node_ids)
        ]
        cfg = OpcUaConfig.model_validate(
            {
                "endpoint": f"opc.tcp://127.0.0.1:{port}/axhub/",
                "publishing_interval_ms": publishing_interval_ms,
                "queue_size": queue_size,
                "nodes": nodes,
            }
        )
        lags: list[tuple[float, float]] = []  # (wall time, lag s) per written batch (median)

        def on_written(batch: Any) -> None:
            now = time.time()
            ts = batch["ts"].cast("int64").to_numpy() / 1e6
            lags.append((now, float(np.median(now - ts))))

        store = TimeSeriesStore(workdir / "ts")
        source = OpcUaSource(cfg)
        source.bulk_decode = bulk_decode
        worker = IngestWorker(
            source, store.wal_sink(), "bench", DeadLetterStore(workdir / "dl"), on_written=on_written
        )
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        subscribed_at = time.monotonic()
        cpu = time.process_time()
        thread.start()
        if not source.wait_connected(120):
            stop.set()
            raise RuntimeError("could not subscribe to the OPC UA server")
        subscribe_s = time.monotonic() - subscribed_at
        # received = stored: the worker's count, so the wait covers the write as well
        done = _run_server(ready, lambda: worker.stats.written)
        stop.set()
        thread.join(30)
        cpu_s = time.process_time() - cpu
    stored = store.count("bench") - n_tags  # minus the initial value of every tag
    store.close()
    return {
        "server_changes": done["writes"],
        "server_seconds": done["seconds"],
        "server_late_ticks": done["late_ticks"],
        "drain_s": done["drain_s"],
        "stored": stored,
        "notifications": getattr(source, "notifications", 0),
        "dead_letters": worker.stats.dead_letters,
        "subscribe_s": subscribe_s,
        "client_cpu_s": cpu_s,
        **_lag_summary(lags),
    }


def _row(
    n_tags: int, hz: float, what: str, count: int, r: dict[str, Any], lag: bool = True
) -> dict[str, Any]:
    """One table line: ``count`` changes of a run ``r`` as a rate, a share, and its lag."""
    return {
        "tags": n_tags,
        "what": what,
        "per second": count / r["server_seconds"],
        "target": n_tags * hz,
        "of changes %": round(100 * count / max(r["server_changes"], 1), 1),
        "lag p50 ms": round(r["lag_p50_s"] * 1000) if lag else "",
        "lag p99 ms": round(r["lag_p99_s"] * 1000) if lag else "",
        "lag 1st → 2nd half ms": (
            f"{r['lag_first_half_s'] * 1000:.0f} → {r['lag_second_half_s'] * 1000:.0f}" if lag else ""
        ),
    }


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("opcua")
    def opcua(
        tags: list[int] = typer.Option([1000], help="Tags on the server (repeat for several runs)."),
        hz: float = typer.Option(10.0, help="Changes per tag per second."),
        seconds: float = typer.Option(20.0, help="Length of each run."),
        server: str = typer.Option(
            "asyncua", help="OPC UA server: asyncua or node (node-opcua, independent)."
        ),
        queue_size: int = typer.Option(
            100, help="Monitored-item queue size (the mapping's default: 10 s of changes at 10 Hz)."
        ),
        publishing_interval_ms: int = typer.Option(100, help="Subscription publishing interval."),
        reference: bool = typer.Option(True, help="Also run the bare asyncua client (no storage)."),
        per_change: bool = typer.Option(
            True, help="Also run AX Hub with asyncua's per-change decoding (the path before bulk decoding)."
        ),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="Write bench-results/ and docs/benchmarks.md."
        ),
        out: Path | None = typer.Option(None, help="JSON output (default $AXHUB_HOME/bench/opcua.json)."),
    ) -> None:
        """OPC UA tags at 10 Hz into the store, beside a bare asyncua client: does ingest keep up?"""
        from axhub.bench.report import BenchResult, save_run

        rows: list[dict[str, Any]] = []
        notes: list[str] = []
        runs: dict[str, Any] = {}
        opts: dict[str, Any] = {
            "server_kind": server,
            "queue_size": queue_size,
            "publishing_interval_ms": publishing_interval_ms,
        }
        for n_tags in tags:
            with tempfile.TemporaryDirectory(prefix="axhub-bench-opcua-") as tmp:
                load_before = os.getloadavg()[0]
                bare = run_bare_client(n_tags, hz, seconds, Path(tmp) / "bare", **opts) if reference else None
                load_between = os.getloadavg()[0]
                ours = run(n_tags, hz, seconds, Path(tmp) / "ours", **opts)
                load_after = os.getloadavg()[0]
                before = (
                    run(n_tags, hz, seconds, Path(tmp) / "before", bulk_decode=False, **opts)
                    if per_change
                    else None
                )
            runs[str(n_tags)] = {
                "bare": bare,
                "ours": ours,
                "per_change": before,
                "load": [load_before, load_between, load_after],
            }
            rows.append(
                _row(n_tags, hz, f"{server} server: changes made", ours["server_changes"], ours, lag=False)
            )
            if bare is not None:
                what = "asyncua client, no storage (reference; first run)"
                rows.append(_row(n_tags, hz, what, bare["received"], bare))
            rows.append(
                _row(n_tags, hz, "AX Hub: readings stored, durable (ours; second run)", ours["stored"], ours)
            )
            notes.append(
                f"{n_tags} tags x {hz:g} Hz for {ours['server_seconds']:.1f} s: stored {ours['stored']:,} of "
                f"{ours['server_changes']:,} changes "
                f"({ours['stored'] / max(ours['server_changes'], 1):.1%}), "
                f"dead letters {ours['dead_letters']}; subscribing took {ours['subscribe_s']:.1f} s; "
                "the client "
                f"process used {ours['client_cpu_s']:.1f} s CPU; the server ran {ours['server_late_ticks']} "
                f"of its ticks late; after its last change we waited {ours['drain_s']:.1f} s for changes "
                "still on their way (until 1.5 s without any)"
                + (
                    f" (reference run: server made {bare['server_changes']:,}, "
                    f"{bare['server_late_ticks']} ticks late)."
                    if bare is not None
                    else "."
                )
            )
            if before is not None:
                rows.append(
                    _row(
                        n_tags,
                        hz,
                        "AX Hub, asyncua's per-change decoding (before; third run)",
                        before["stored"],
                        before,
                    )
                )
            notes.append(
                f"{n_tags} tags: 1-min load average {load_before:.1f} before the reference run, "
                f"{load_between:.1f} before ours, {load_after:.1f} after (2 cores, shared with other jobs)."
            )
        notes += [
            f"The {server} server runs in its own process on the same 2 cores; its tags change "
            f"{hz:g} times a second (value and source timestamp). Publishing interval "
            f"{publishing_interval_ms} ms, queue size {queue_size} per monitored item.",
            "AX Hub: the OPC UA source (PublishResponses decoded in bulk, `opcua_bulk`) and the "
            "ingest worker, into the store through its write-ahead log (fsynced, as `axhub run "
            "ingest` does). Lag: source timestamp → durable write, median per written batch; flat "
            "from the first to the second half of the run = keeping up.",
            "Reference: a plain asyncua client subscribed the way its documentation shows, counting the "
            "changes and storing nothing, against a fresh run of the same server just before ours (the two "
            "cannot share the CPU fairly at once). Lag: source timestamp → received.",
        ]
        save_run(
            BenchResult(
                name="opcua",
                title="OPC UA subscription ingest",
                dataset=f"{', '.join(str(t) for t in tags)} simulated tags at {hz:g} Hz ({server} server)",
                split="n/a",
                rows=rows,
                notes=notes,
                extra={"runs": runs, "hz": hz, "seconds": seconds, "server": server},
            ),
            update_docs=update_docs,
            out=out,
        )
