"""``axhub ingest FILE``: load a CSV, .xlsx or Parquet export into the time-series store, onto a
machine; deployed models score it. The work is ``serve.files.ingest_onto_asset`` (the same as
an upload); this module only parses options and prints."""

from __future__ import annotations

from pathlib import Path

import typer

from axhub.cli._context import console, friendly_errors, open_database, org_id_for
from axhub.cli._lang import lang_option, t


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)


@friendly_errors
def ingest_command(
    file: Path = typer.Argument(..., help="CSV, .xlsx or Parquet file to load. / 적재할 파일."),
    asset: str | None = typer.Option(
        None, "--asset", help="Machine the readings belong to (wide files). / 설비 이름."
    ),
    map_file: Path | None = typer.Option(
        None, "--map", help="Mapping file (YAML/JSON): columns -> assets/signals. / 컬럼 매핑 파일."
    ),
    encoding: str | None = typer.Option(
        None, "--encoding", help="Text encoding, e.g. cp949 (default: detected). / 인코딩."
    ),
    delimiter: str | None = typer.Option(
        None, "--delimiter", help="Field separator, e.g. ';' or '\\t' (default: detected). / 구분자."
    ),
    decimal: str | None = typer.Option(
        None, "--decimal", help="Decimal mark '.' or ',' (default: detected). / 소수점."
    ),
    thousands: str | None = typer.Option(
        None, "--thousands", help="Thousands separator (default: detected). / 천 단위 구분자."
    ),
    sheet: str | None = typer.Option(None, "--sheet", help="Sheet of an .xlsx file (default: the first)."),
    tz: str | None = typer.Option(
        None, "--tz", help="Time zone of times without an offset (default: the machine's site). / 시간대."
    ),
    time_column: str | None = typer.Option(
        None, "--time-column", help="Column holding the time. / 시간 컬럼."
    ),
    time_format: str | None = typer.Option(
        None,
        "--time-format",
        help="Time format, e.g. '%d.%m.%Y %H:%M:%S' or epoch_s (default: ISO 8601, Korean forms).",
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
    score: bool = typer.Option(
        True, "--score/--no-score", help="Score with the machine's deployed models. / 배포 모델로 점검."
    ),
    block_bytes: int = typer.Option(8 << 20, "--block-bytes", hidden=True, help="CSV block size (tests)."),
    lang: str | None = lang_option(),
) -> None:
    """Load a plant export; bad rows go to a rejects file, good rows land, deployed models score it.

    Re-running the same file is safe: readings already stored are skipped, never duplicated.
    """
    from rich.table import Table

    from axhub.core.settings import get_settings
    from axhub.core.timeutil import parse_timezone
    from axhub.ingest.file_mapping import FileMapping
    from axhub.serve.files import ingest_onto_asset

    settings = get_settings()
    overrides = dict(
        asset=asset,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        thousands=thousands,
        sheet=sheet,
        timezone=tz,
        time_column=time_column,
        time_format=time_format,
        layout=layout,
    )
    given: FileMapping | None = None
    if map_file or ignore or any(v is not None for k, v in overrides.items() if k != "asset"):
        base = FileMapping.load(map_file) if map_file else FileMapping()
        given = base.with_overrides(**overrides, ignore=[*base.ignore, *ignore] if ignore else None)
    db = open_database(settings)
    org_id = org_id_for(db, org or settings.default_org)
    result = ingest_onto_asset(
        db,
        settings,
        org_id,
        file,
        asset=asset or (given.asset if given else None),
        mapping=given,
        label=str(file),
        rejects_path=rejects,
        progress=True,
        console=console,
        block_bytes=block_bytes,
        compact=compact,
        score=score,
        actor="cli",
        create_missing_asset=True,
    )
    report = result.report
    zone = parse_timezone(result.mapping.timezone or "UTC")
    s = report.settings
    how = ", ".join(
        f"{k}={s[k]!r}"
        for k in ("kind", "encoding", "delimiter", "decimal", "thousands", "sheet", "time_column")
        if s.get(k) not in (None, "")
    )
    table = Table(title=t("ingest.title", file=file.name), show_header=False)
    table.add_row(t("ingest.settings"), f"{how}, timezone={zone.key}")
    table.add_row(t("ingest.mapping"), t(f"ingest.mapping.{result.mapping_source}"))
    table.add_row(t("ingest.rows_read"), f"{report.rows_read:,}")
    table.add_row(t("ingest.points"), f"{report.points_written:,}")
    table.add_row(t("ingest.duplicates"), f"{report.duplicates:,}")
    table.add_row(t("ingest.rows_rejected"), f"{report.rows_rejected:,}")
    table.add_row(t("ingest.values_rejected"), f"{report.values_rejected:,}")
    table.add_row(t("ingest.empty"), f"{report.empty_cells:,}")
    table.add_row(t("ingest.signals"), t("ingest.signals_new", n=len(report.signals), new=result.new_signals))
    if report.first_ts and report.last_ts:
        first, last = report.first_ts.astimezone(zone), report.last_ts.astimezone(zone)
        table.add_row(t("ingest.period"), f"{first:%Y-%m-%d %H:%M:%S} – {last:%Y-%m-%d %H:%M:%S}")
    table.add_row(t("ingest.time"), f"{report.elapsed_s:.2f} s")
    table.add_row(t("ingest.alerts"), f"{len(result.alerts)}")
    console.print(table)
    if report.rows_read and report.points_written + report.duplicates == 0:
        console.print(f"[bold red]{t('ingest.nothing')}[/]")
    if report.rejects_path is not None:
        console.print(f"[yellow]{t('ingest.rejects_file')}[/] {report.rejects_path}")
        from axhub.cli._lang import current_lang

        for problem in report.first_rejects[:5]:
            console.print(f"  • {problem.render(current_lang())}")
    del lang
