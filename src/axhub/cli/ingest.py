"""``axhub ingest FILE``: load a CSV or Parquet export into the time-series store."""

from __future__ import annotations

from pathlib import Path

import typer

from axhub.cli._context import console, friendly_errors, open_database, org_id_for


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)


@friendly_errors
def ingest_command(
    file: Path = typer.Argument(..., help="CSV or Parquet file to load. / 적재할 CSV 또는 Parquet 파일."),
    asset: str | None = typer.Option(
        None, "--asset", help="Machine the readings belong to (wide files). / 설비 이름."
    ),
    map_file: Path | None = typer.Option(
        None, "--map", help="Mapping file (YAML/JSON): columns -> assets/signals. / 컬럼 매핑 파일."
    ),
    delimiter: str | None = typer.Option(
        None, "--delimiter", help="Field separator, e.g. ';' or '\\t' (default: detected). / 구분자."
    ),
    tz: str | None = typer.Option(
        None, "--tz", help="Time zone of times without an offset, e.g. Asia/Seoul (default UTC). / 시간대."
    ),
    time_column: str | None = typer.Option(
        None, "--time-column", help="Column holding the time. / 시간 컬럼."
    ),
    time_format: str | None = typer.Option(
        None,
        "--time-format",
        help="Time format, e.g. '%d.%m.%Y %H:%M:%S' or epoch_s / epoch_ms (default ISO 8601). / 시간 형식.",
    ),
    layout: str | None = typer.Option(None, "--layout", help="wide | long (default: detected). / 형식."),
    ignore: list[str] = typer.Option([], "--ignore", help="Column that is not a signal (repeatable)."),
    org: str | None = typer.Option(None, "--org", help="Organisation (default: settings). / 조직."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Where to write rejected rows (CSV). / 거부된 행 저장 위치."
    ),
    compact: bool = typer.Option(
        True, "--compact/--no-compact", help="Merge small files afterwards (faster queries). / 파일 병합."
    ),
    block_bytes: int = typer.Option(8 << 20, "--block-bytes", hidden=True, help="CSV block size (tests)."),
) -> None:
    """Load a plant export; bad rows go to a rejects file, good rows land.

    Re-running the same file is safe: readings already stored are skipped, never duplicated.
    공장 데이터 파일을 적재합니다. 잘못된 행은 거부 파일로, 정상 행은 저장됩니다. 같은 파일을 다시
    적재해도 중복되지 않습니다.
    """
    from rich.table import Table

    from axhub.core.settings import get_settings
    from axhub.ingest.file_mapping import FileMapping
    from axhub.ingest.files import ingest_file
    from axhub.store.scoped import OrgScope
    from axhub.store.timeseries import TimeSeriesStore

    settings = get_settings()
    mapping = FileMapping.load(map_file) if map_file else FileMapping()
    mapping = mapping.with_overrides(
        asset=asset,
        delimiter=delimiter,
        timezone=tz,
        time_column=time_column,
        time_format=time_format,
        layout=layout,
        ignore=[*mapping.ignore, *ignore] if ignore else None,
    )
    db = open_database(settings)
    org_slug = org or settings.default_org
    org_id = org_id_for(db, org_slug)
    store = TimeSeriesStore(settings.timeseries_root)
    report = ingest_file(
        file,
        store,
        org_id,
        mapping,
        rejects_path=rejects,
        block_bytes=block_bytes,
        progress=True,
        console=console,
    )
    # Register what the file held, so the signals show up in the catalogue and the API.
    with db.session() as session:
        new = OrgScope(session, org_id).register_signals(
            [(s.asset, s.signal, s.unit or "") for s in report.signals]
        )
    merged = 0
    if compact:
        # Each block became its own file; one file per day partition keeps queries fast.
        for asset_name in sorted({s.asset for s in report.signals}):
            merged += store.compact(org_id, asset_name).files_before
    table = Table(title=f"Ingest summary / 적재 결과 — {file.name}", show_header=False)
    table.add_row("rows read / 읽은 행", f"{report.rows_read:,}")
    table.add_row("points written / 저장된 값", f"{report.points_written:,}")
    table.add_row("already stored (skipped) / 중복 건너뜀", f"{report.duplicates:,}")
    table.add_row("rows rejected / 거부된 행", f"{report.rows_rejected:,}")
    table.add_row("empty cells / 빈 셀", f"{report.empty_cells:,}")
    table.add_row("signals / 신호", f"{len(report.signals)} ({new} new)")
    table.add_row("time / 소요 시간", f"{report.elapsed_s:.2f} s ({report.points_per_s:,.0f} points/s)")
    if merged:
        table.add_row("files compacted / 병합된 파일", f"{merged:,}")
    console.print(table)
    if report.rejects_path is not None:
        console.print(f"[yellow]rejected rows written to[/] {report.rejects_path}")
        for problem in report.first_rejects[:5]:
            console.print(f"  • {problem}")
