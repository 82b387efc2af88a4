"""``axhub run ingest`` (the long-running ingest worker) and ``axhub run sim-live``."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from axhub.cli._context import console, friendly_errors, open_database, org_id_for


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _serialised(func: Callable[[Any], None]) -> Callable[[Any], None]:
    """One protocol's worker at a time: scorers keep per-asset state between batches."""
    lock = threading.Lock()

    def call(batch: Any) -> None:
        with lock:
            func(batch)

    return call


def _chain(hooks: list[Callable[[Any], None]]) -> Callable[[Any], None]:
    def call(batch: Any) -> None:
        for hook in hooks:
            hook(batch)

    return call


def _write_health(path: Path, workers: list[Any]) -> None:
    """The workers' health as JSON, replaced atomically (a monitor never reads half a file)."""
    import json
    import os

    body = {"updated": time.time(), "pid": os.getpid(), "workers": [w.health() for w in workers]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _health_line(health: dict[str, Any]) -> str:
    """One source's state for the periodic summary line (never payloads)."""
    state = "ok" if health.get("ok") else "NOT OK"
    problems = health.get("problems") or []
    return f"{health.get('kind')}: {state}" + (f" ({'; '.join(problems[:3])})" if problems else "")


def register(app: typer.Typer) -> None:
    run_app = typer.Typer(
        help="Long-running services: the ingest worker and the live simulated plant. / 상시 실행 서비스.",
        no_args_is_help=True,
    )

    @run_app.command("ingest")
    @friendly_errors
    def ingest(
        config: Path = typer.Option(
            ..., "--config", "-c", help="Mapping file (YAML) with mqtt/opcua/modbus."
        ),
        org: str | None = typer.Option(
            None, help="Organisation (default: the mapping's 'org', then settings)."
        ),
        only: list[str] = typer.Option([], "--only", help="Run only these protocols (mqtt, opcua, modbus)."),
        client_id: str | None = typer.Option(
            None, help="MQTT client id (each worker of a shared group needs its own)."
        ),
        flush_rows: int = typer.Option(50_000, help="Write to the store after this many readings ..."),
        flush_ms: int = typer.Option(200, help="... or after this many milliseconds."),
        stats_every: float = typer.Option(10.0, help="Print throughput every N seconds (0 = never)."),
        health_file: Path | None = typer.Option(
            None,
            help="Keep each worker's health (state, problems, counts) in this JSON file, for monitoring.",
        ),
    ) -> None:
        """Read machines continuously into the time-series store; nothing lost, nothing twice.

        Readings are acknowledged to the broker only after they are stored; malformed
        payloads go to the dead-letter store with the reason. Stop with Ctrl-C (or SIGTERM).
        / 설비 데이터를 계속 수집해 시계열 저장소에 기록합니다.
        """
        from axhub.core.malloc_arenas import limit_malloc_arenas
        from axhub.core.settings import get_settings
        from axhub.ingest.connectors.factory import build_source, configured_protocols, quiet_protocol_loggers
        from axhub.ingest.deadletter import DeadLetterStore
        from axhub.ingest.registrar import SignalRegistrar
        from axhub.ingest.tag_mapping import load_mapping
        from axhub.ingest.worker import IngestWorker
        from axhub.serve.alerts import AlertManager, DbAlertSink
        from axhub.serve.deployed import deployed_rules, deployed_scorers
        from axhub.serve.scorer import LiveScoring
        from axhub.store.timeseries import TimeSeriesStore

        # Before any thread starts: the worker's resident memory stays flat (see malloc_arenas).
        limit_malloc_arenas()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        quiet_protocol_loggers()
        import pyarrow as pa

        logging.getLogger(__name__).info("Arrow allocator: %s", pa.default_memory_pool().backend_name)
        mapping = load_mapping(config)
        settings = get_settings()
        settings.ensure_dirs()
        org_name = org or mapping.org or settings.default_org
        db = open_database(settings)
        org_id = org_id_for(db, org_name)
        store = TimeSeriesStore(settings.timeseries_root)
        # The organisation's deployed models score every batch right after it is stored.
        alerts = AlertManager(DbAlertSink(db, org_id))
        scorers = deployed_scorers(db, settings, org_id, alerts)
        rules = deployed_rules(db, org_id, alerts)  # user-defined limit / rate-of-change rules
        scoring = _serialised(LiveScoring(scorers, rules)) if scorers or rules else None
        deadletters = DeadLetterStore(settings.home / "deadletter")
        protocols = [p for p in configured_protocols(mapping) if not only or p in only]
        if not protocols:
            raise typer.BadParameter("no connection to run: check --only and the mapping file")
        stop = threading.Event()
        _install_stop_handlers(stop)
        workers: list[IngestWorker] = []
        threads: list[threading.Thread] = []
        for protocol in protocols:
            source = build_source(
                mapping, protocol, client_id=client_id, state_dir=settings.home / "ingest-state" / str(org_id)
            )
            # New signals (Korean names too) are registered so the dashboard lists them.
            names = getattr(source, "display_names", None)
            hooks: list[Callable[[Any], None]] = [SignalRegistrar(db, org_id, names)]
            if scoring is not None:
                hooks.append(scoring)
            on_written = _chain(hooks)
            worker = IngestWorker(
                source,
                # Through the write-ahead log: one fsync per flush, whatever it touches.
                store.wal_sink(),
                org_id,
                deadletters,
                flush_rows=flush_rows,
                flush_interval_s=flush_ms / 1000,
                on_written=on_written,
            )
            workers.append(worker)
            thread = threading.Thread(target=worker.run, args=(stop,), name=f"ingest-{protocol}")
            thread.start()
            threads.append(thread)
        console.print(
            f"[green]ingesting[/] {', '.join(protocols)} → org '{org_name}' ({settings.timeseries_root}); "
            f"live scoring with {len(scorers)} deployed model(s)"
        )
        last = time.monotonic()
        last_written = 0
        while any(t.is_alive() for t in threads):
            stop.wait(1.0)
            if stop.is_set():
                break
            if health_file is not None:
                _write_health(health_file, workers)
            if stats_every and time.monotonic() - last >= stats_every:
                written = sum(w.stats.written for w in workers)
                rate = (written - last_written) / (time.monotonic() - last)
                dead = sum(w.stats.dead_letters for w in workers)
                console.print(
                    f"written {written:,} readings ({rate:,.0f}/s), dead letters {dead}; "
                    + "; ".join(_health_line(w.health()) for w in workers)
                )
                last, last_written = time.monotonic(), written
        for thread in threads:
            thread.join(30)
        if health_file is not None:
            _write_health(health_file, workers)
        store.close()  # stops the log compactor; what is still in the log stays durable
        failed = [w for w in workers if w.error]
        for w in workers:
            console.print(
                f"{w.source.kind}: written {w.stats.written:,} (redelivered duplicates dropped when "
                "read and compacted), "
                f"dead letters {w.stats.dead_letters}" + (f" [red]stopped: {w.error}[/]" if w.error else "")
            )
        if failed and not stop.is_set():
            # A worker that died must not leave a process that looks alive: exit non-zero so the
            # service manager restarts it (unacked messages are redelivered).
            raise typer.Exit(1)

    @run_app.command("sim-live")
    @friendly_errors
    def sim_live(
        days: float = typer.Option(0.05, help="Days of plant data to replay."),
        seed: int = typer.Option(7, help="Simulator seed."),
        speed: float = typer.Option(1.0, help="Replay speed (10 = ten times faster than real time)."),
        mqtt_host: str = typer.Option("127.0.0.1", help="MQTT broker host."),
        mqtt_port: int = typer.Option(1883, help="MQTT broker port (0 = do not publish)."),
        mqtt_prefix: str = typer.Option("axhub-sim", help="Topic prefix: <prefix>/<asset>/batch."),
        opcua_port: int = typer.Option(4840, help="OPC UA server port (0 = no server)."),
        modbus_port: int = typer.Option(5020, help="Modbus TCP server port (0 = no server)."),
        duration: float | None = typer.Option(None, help="Stop after this many seconds."),
        mapping_out: Path | None = typer.Option(None, help="Write the matching mapping file here."),
    ) -> None:
        """Serve the simulated plant live over MQTT, OPC UA and Modbus TCP.

        / 시뮬레이션 공장을 MQTT, OPC UA, Modbus TCP로 실시간 제공합니다.
        """
        import asyncio

        import yaml

        from axhub.sim.live import LiveTag, live_mapping, serve_plant_live
        from axhub.sim.plant import simulate_plant

        plant = simulate_plant(days=days, seed=seed)
        frames = plant.frames
        tags = [LiveTag(a, c) for a, f in frames.items() for c in f.columns if c != "ts"]
        if mapping_out is not None:
            mapping = live_mapping(
                tags,
                mqtt_port=mqtt_port,
                mqtt_prefix=mqtt_prefix,
                opcua_endpoint=f"opc.tcp://127.0.0.1:{opcua_port}/axhub/" if opcua_port else None,
                modbus_port=modbus_port or None,
            )
            mapping_out.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
            console.print(f"mapping file written to {mapping_out}")
        console.print(
            f"serving {len(tags)} tags of {len(frames)} assets: MQTT {mqtt_host}:{mqtt_port or '-'}, "
            f"OPC UA :{opcua_port or '-'}, Modbus :{modbus_port or '-'} (Ctrl-C stops)"
        )
        try:
            sent = asyncio.run(
                serve_plant_live(
                    frames,
                    mqtt_host=mqtt_host,
                    mqtt_port=mqtt_port or None,
                    mqtt_prefix=mqtt_prefix,
                    opcua_port=opcua_port or None,
                    modbus_port=modbus_port or None,
                    speed=speed,
                    duration_s=duration,
                )
            )
        except KeyboardInterrupt:
            return
        console.print(f"sent {sent:,} readings")

    app.add_typer(run_app, name="run")
