"""``axhub connect mqtt|opcua|modbus --config ...``: try a connection and show what arrives;
``axhub connect opcua-certificate``: the client certificate for OPC UA certificate security."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer

from axhub.cli._context import console, friendly_errors, open_database, org_id_for


def _preview(protocol: str, config: Path, seconds: float, store: bool) -> None:
    from rich.table import Table

    from axhub.core.readings import concat_readings
    from axhub.core.settings import get_settings
    from axhub.ingest.connectors.factory import build_source
    from axhub.ingest.deadletter import DeadLetterStore
    from axhub.ingest.tag_mapping import load_mapping

    mapping = load_mapping(config)
    source = build_source(mapping, protocol)  # type: ignore[arg-type]
    if store:
        from axhub.ingest.worker import IngestWorker
        from axhub.store.timeseries import TimeSeriesStore

        settings = get_settings()
        settings.ensure_dirs()
        worker = IngestWorker(
            source,
            TimeSeriesStore(settings.timeseries_root),
            org_id_for(open_database(settings), mapping.org or settings.default_org),
            DeadLetterStore(settings.home / "deadletter"),
        )
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        stats = worker.run(stop)
        console.print(f"stored {stats.written:,} readings, dead letters {stats.dead_letters}")
        return
    # Preview only: nothing is acknowledged, so a persistent session keeps it for the worker.
    source.connect()
    batches = []
    rejected = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for d in source.poll(0.2):
                batches.append(d.batch)
                rejected += d.rejected
    finally:
        source.close()
    table = concat_readings(batches) if batches else None
    n = 0 if table is None else table.num_rows
    console.print(f"{protocol}: {n:,} readings and {len(rejected)} unreadable payloads in {seconds:g} s")
    if table is not None and n:
        view = Table(title="last reading per signal / 신호별 최근 값")
        for col in ("asset", "signal", "time (UTC)", "value", "quality"):
            view.add_column(col)
        latest: dict[tuple[str, str], dict[str, object]] = {}
        for row in table.to_pylist():
            latest[(row["asset"], row["signal"])] = row
        for (asset, signal), row in sorted(latest.items())[:50]:
            view.add_row(
                asset, signal, f"{row['ts']:%H:%M:%S.%f}"[:-3], f"{row['value']}", str(row["quality"])
            )
        console.print(view)
    for r in rejected[:5]:
        console.print(f"[yellow]rejected[/] {r.origin}: {r.reason}")


def _opcua_certificate(out: Path, uri: str | None, days: int, replace: bool) -> None:
    from axhub.cli._lang import t
    from axhub.ingest.connectors.opcua_certificate import CERT_NAME, KEY_NAME, certificate_uri
    from axhub.ingest.connectors.opcua_certificate import make_client_certificate as make

    existed = (out / CERT_NAME).exists() and (out / KEY_NAME).exists() and not replace
    cert_file, key_file = make(out, application_uri=uri, days=days, replace=replace)
    cert_file, key_file = cert_file.resolve(), key_file.resolve()
    made_uri = certificate_uri(cert_file) or "?"
    console.print(t("opcua_cert.kept" if existed else "opcua_cert.made", uri=made_uri), markup=False)
    console.print(f"  {t('opcua_cert.certificate')}: {cert_file}", markup=False, soft_wrap=True)
    console.print(f"  {t('opcua_cert.key')}: {key_file}", markup=False, soft_wrap=True)
    console.print(t("opcua_cert.mapping"), markup=False)
    console.print(
        "  security_policy: Basic256Sha256\n  security_mode: Sign\n"
        f"  certificate: {cert_file}\n  private_key: {key_file}",
        markup=False,
        soft_wrap=True,
    )
    console.print(t("opcua_cert.trust"), markup=False)


def register(app: typer.Typer) -> None:
    connect_app = typer.Typer(
        help="Try a machine connection from a mapping file and show the readings. / 설비 연결 확인.",
        no_args_is_help=True,
    )

    def _command(protocol: str) -> None:
        @connect_app.command(
            protocol, help=f"Connect over {protocol} and show what arrives (nothing stored unless --store)."
        )
        @friendly_errors
        def run(
            config: Path = typer.Option(..., "--config", "-c", help="Mapping file (YAML)."),
            seconds: float = typer.Option(5.0, help="How long to listen."),
            store: bool = typer.Option(False, help="Also store what arrives (as 'axhub run ingest' does)."),
        ) -> None:
            _preview(protocol, config, seconds, store)

    for protocol in ("mqtt", "opcua", "modbus"):
        _command(protocol)

    @connect_app.command(
        "opcua-certificate",
        help="Make the OPC UA client certificate a server is asked to trust (signed or encrypted channels).",
    )
    @friendly_errors
    def opcua_certificate(
        out: Path = typer.Option(Path("opcua-pki"), "--out", help="Folder for the certificate and its key."),
        uri: str | None = typer.Option(
            None, "--uri", help="ApplicationUri (default: urn:<this computer>:axhub:ingest)."
        ),
        days: int = typer.Option(3650, min=1, help="Days the certificate is valid."),
        replace: bool = typer.Option(False, "--replace", help="Make a new one even if one is there."),
    ) -> None:
        _opcua_certificate(out, uri, days, replace)

    app.add_typer(connect_app, name="connect")
