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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
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
            await server.write(tag.asset, tag.signal, float(tick * 1000 + k), now)
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
    await asyncio.sleep(2.0)  # let the last notifications go out
    await server.stop()


PEERS = Path(__file__).resolve().parents[3] / "tests" / "peers"


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


def run(
    n_tags: int,
    hz: float,
    seconds: float,
    workdir: Path,
    *,
    server_kind: str = "asyncua",
    queue_size: int = 10,
    publishing_interval_ms: int = 100,
) -> dict[str, Any]:
    from axhub.bench._broker import free_port, wait_port
    from axhub.ingest.connectors.opcua import OpcUaSource
    from axhub.ingest.deadletter import DeadLetterStore
    from axhub.ingest.tag_mapping import OpcUaConfig
    from axhub.ingest.worker import IngestWorker
    from axhub.store.timeseries import TimeSeriesStore

    port = free_port()
    ready = str(workdir / "ready.json")
    env = {**os.environ, "NODE_PATH": str(PEERS / "node_modules")}
    server = subprocess.Popen(_server_command(server_kind, port, n_tags, hz, seconds, ready), env=env)
    try:
        deadline = time.monotonic() + 120
        while not Path(ready).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_port("127.0.0.1", port, 30)
        ns = json.loads(Path(ready).read_text())["ns"]
        nodes = [
            {
                "node": f"ns={ns};s=line-{i // 100:02d}.tag{i % 100:03d}",
                "asset": f"line-{i // 100:02d}",
                "signal": f"tag{i % 100:03d}",
            }
            for i in range(n_tags)
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
        worker = IngestWorker(source, store, "bench", DeadLetterStore(workdir / "dl"), on_written=on_written)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        subscribed_at = time.monotonic()
        thread.start()
        if not source.wait_connected(120):
            raise RuntimeError("could not subscribe to the OPC UA server")
        subscribe_s = time.monotonic() - subscribed_at
        Path(ready + ".go").write_text("go")
        while not Path(ready + ".done").exists():
            time.sleep(0.1)
        time.sleep(2.5)
        stop.set()
        thread.join(30)
        done = json.loads(Path(ready + ".done").read_text())
    finally:
        server.terminate()
        server.wait(10)
    stored = store.count("bench") - n_tags  # minus the initial value of every tag
    lag_values = np.asarray([lag for _t, lag in lags]) if lags else np.asarray([np.nan])
    half = len(lag_values) // 2
    return {
        "server": server_kind,
        "queue_size": queue_size,
        "publishing_interval_ms": publishing_interval_ms,
        "tags": n_tags,
        "hz": hz,
        "server_changes": done["writes"],
        "server_seconds": done["seconds"],
        "server_late_ticks": done["late_ticks"],
        "stored": stored,
        "notifications": getattr(source, "notifications", 0),
        "subscribe_s": subscribe_s,
        "lag_p50_s": float(np.percentile(lag_values, 50)),
        "lag_p99_s": float(np.percentile(lag_values, 99)),
        "lag_first_half_s": float(np.median(lag_values[: max(half, 1)])),
        "lag_second_half_s": float(np.median(lag_values[half:])),
    }


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("opcua")
    def opcua(
        tags: int = typer.Option(1000, help="Tags on the server."),
        hz: float = typer.Option(10.0, help="Changes per tag per second."),
        seconds: float = typer.Option(20.0, help="Length of the run."),
        server: str = typer.Option("asyncua", help="OPC UA server: asyncua or node-opcua (independent)."),
        queue_size: int = typer.Option(10, help="Monitored-item queue size."),
        publishing_interval_ms: int = typer.Option(100, help="Subscription publishing interval."),
        update_docs: bool = typer.Option(
            False, "--update-docs", help="Write bench-results/ and docs/benchmarks.md."
        ),
        out: Path | None = typer.Option(None, help="JSON output (default $AXHUB_HOME/bench/opcua.json)."),
    ) -> None:
        """1,000 OPC UA tags at 10 Hz subscribed into the store: does ingest keep up?"""
        from axhub.bench.report import BenchResult, save_run

        with tempfile.TemporaryDirectory(prefix="axhub-bench-opcua-") as tmp:
            r = run(
                tags,
                hz,
                seconds,
                Path(tmp),
                server_kind=server,
                queue_size=queue_size,
                publishing_interval_ms=publishing_interval_ms,
            )
        target = tags * hz
        changes_per_s = r["server_changes"] / r["server_seconds"]
        rows = [
            {"what": "server: changes made", "per second": changes_per_s, "target": target},
            {
                "what": "AX Hub: readings stored",
                "per second": r["stored"] / r["server_seconds"],
                "target": target,
            },
        ]
        notes = [
            f"{tags} tags x {hz:g} Hz for {r['server_seconds']:.1f} s; the {server} server runs in its own "
            f"process ({r['server_late_ticks']} of its ticks ran late).",
            f"Stored {r['stored']:,} of {r['server_changes']:,} changes "
            f"({r['stored'] / max(r['server_changes'], 1):.1%}); subscribing took {r['subscribe_s']:.1f} s.",
            f"Lag source timestamp → durable write: p50 {r['lag_p50_s'] * 1000:.0f} ms, "
            f"p99 {r['lag_p99_s'] * 1000:.0f} ms; median first half {r['lag_first_half_s'] * 1000:.0f} ms vs "
            f"second half {r['lag_second_half_s'] * 1000:.0f} ms (flat = keeping up).",
        ]
        save_run(
            BenchResult(
                name="opcua",
                title="OPC UA subscription ingest",
                dataset=f"{tags} simulated tags at {hz:g} Hz ({server} server)",
                split="n/a",
                rows=rows,
                notes=notes,
                extra=r,
            ),
            update_docs=update_docs,
            out=out,
        )
