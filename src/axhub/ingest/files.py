"""File ingestion: CSV (any encoding, delimiter, number format; wide or long layout), Excel
``.xlsx`` and Parquet into a ``ReadingSink``. One engine behind ``axhub ingest``, API uploads
and the dashboard's preview.

* **Detected, overridable settings**: encoding (UTF-8, UTF-8 with BOM, CP949/EUC-KR; checked
  over the whole file), delimiter, decimal comma and thousands separators, the time column and
  Korean time forms (``2026-03-02 오후 2:15:00``); whatever the mapping gives wins. The settings
  used are in ``IngestReport.settings``.
* **Streaming, bounded memory** (``file_readers``), **vectorised** parsing (``file_values``,
  ``file_convert``).
* **Validation**: a problem that makes the whole file unusable (``file_plan``, first block)
  raises ``InputValidationError(whole_file=True)`` before anything is written. Single bad
  cells/rows go to a rejects CSV (``file_report``) and the good ones land.
* **Dry runs**: ``CountingSink`` counts what would be stored (the preview counts the whole file).
* **Resume-safe**: the store's writes are idempotent, so re-running a file after a crash
  (SIGKILL included) completes it without duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from axhub.core.errors import InputValidationError, problem
from axhub.core.readings import READINGS_SCHEMA, VALUE_INT_FIELD, ReadingSink, WriteResult
from axhub.ingest.file_convert import Converter
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_numbers import detect_number_format
from axhub.ingest.file_plan import Plan, plan_columns
from axhub.ingest.file_readers import Source, open_source, sniff_delimiter
from axhub.ingest.file_report import (
    IngestReport,
    Rejects,
    RowNumbers,
    SignalSeen,
    default_rejects_path,
)

DEFAULT_BLOCK_BYTES = 8 << 20

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "CountingSink",
    "IngestReport",
    "SignalSeen",
    "default_rejects_path",
    "ingest_file",
    "resolve_settings",
    "sniff_delimiter",
]


@dataclass
class CountingSink:
    """A sink that stores nothing: counts points per (asset, signal) for dry runs and previews."""

    points: dict[tuple[str, str], int] = field(default_factory=dict)

    def write(self, org: str, batch: pa.Table) -> WriteResult:
        if batch.num_rows:
            pairs = pa.table(
                {"a": pc.cast(batch["asset"], pa.string()), "s": pc.cast(batch["signal"], pa.string())}
            )
            for row in pairs.group_by(["a", "s"]).aggregate([("a", "count")]).to_pylist():
                key = (row["a"], row["s"])
                self.points[key] = self.points.get(key, 0) + int(row["a_count"])
        return WriteResult(written=batch.num_rows)


def _sample_cells(source: Source, plan: Plan) -> list[str]:
    """Text of the signal cells in the first rows (for the number-format detection)."""
    import csv

    if source.kind != "csv":
        return []
    lines = source.sample.splitlines()[1:500]
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may cut the last line
    wanted = [source.header.index(c) for c in plan.needed()[1:] if c in source.header]
    if plan.layout == "long" and plan.value_column in source.header:
        wanted = [source.header.index(plan.value_column)]
    cells: list[str] = []
    for row in csv.reader(lines, delimiter=source.settings["delimiter"]):
        cells += [row[j] for j in wanted if j < len(row)]
    return cells


def resolve_settings(source: Source, mapping: FileMapping, plan: Plan) -> FileMapping:
    """The mapping with every detected setting filled in (given settings are kept)."""
    decimal, thousands = mapping.decimal, mapping.thousands
    if decimal is None or thousands is None:
        found_decimal, found_thousands = detect_number_format(_sample_cells(source, plan))
        if decimal is None:
            decimal = found_decimal  # type: ignore[assignment]
        if thousands is None:
            thousands = found_thousands if found_thousands != decimal else ""  # type: ignore[assignment]
    return mapping.model_copy(
        update={
            "decimal": decimal,
            "thousands": thousands,
            "time_column": plan.time_column,
            "layout": plan.layout,
            "encoding": source.settings.get("encoding", mapping.encoding),
            "delimiter": source.settings.get("delimiter", mapping.delimiter),
            "sheet": source.settings.get("sheet", mapping.sheet),
        }
    )


def ingest_file(
    path: Path | str,
    store: ReadingSink,
    org: str,
    mapping: FileMapping | None = None,
    *,
    rejects_path: Path | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = False,
    console: Console | None = None,
    label: str | None = None,
    write_rejects: bool = True,
) -> IngestReport:
    """Ingest one CSV, ``.xlsx`` or Parquet file into ``store`` for ``org``; see the module docstring.

    ``label`` names the file in every message (default: the path as given; uploads pass the
    user's file name, never a server path). Rejects go to ``rejects_path`` (default:
    ``<store root>/../rejects/<file>.<utc>.rejects.csv``, or beside the input when the store has
    no root); the file is only created if needed, and never with ``write_rejects=False``.
    """
    started = time.perf_counter()
    path = Path(path)
    mapping = mapping or FileMapping()
    label = label or str(path)
    if not path.is_file():
        raise InputValidationError(problem(label, None, None, "file_not_found"), whole_file=True)
    if rejects_path is None and write_rejects:
        root = getattr(store, "root", None)
        rejects_dir = Path(root).parent / "rejects" if root is not None else path.parent
        rejects_path = default_rejects_path(rejects_dir, path)
    report = IngestReport(file=label)
    rejects = Rejects(rejects_path if write_rejects else None, label)
    source = open_source(path, mapping, label)
    plan = plan_columns(source.header, mapping, label)
    mapping = resolve_settings(source, mapping, plan)
    report.settings = {
        "kind": source.kind,
        **{k: getattr(mapping, k) for k in ("encoding", "delimiter", "decimal", "thousands", "sheet")},
        "time_column": plan.time_column,
        "time_format": mapping.time_format,
        "timezone": mapping.timezone or "UTC",
        "layout": plan.layout,
    }
    converter = Converter(plan, mapping, rejects, report)
    row_numbers = RowNumbers(first_line=source.first_line)
    native = _is_native_store(store)
    seen: set[SignalSeen] = set()
    size = path.stat().st_size
    bar = Progress(
        TextColumn(f"[bold]ingest[/] {path.name}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    with bar:
        task = bar.add_task("ingest", total=size)

        def on_progress(done: int) -> None:
            bar.update(task, completed=min(done, size))

        batches = source.batches(plan, row_numbers, block_bytes, rejects, report, on_progress)
        parsed_rows = 0
        try:
            for batch in batches:
                base = parsed_rows

                def lines(idx: np.ndarray, base: int = base) -> np.ndarray:
                    return row_numbers.lines(idx.astype(np.int64) + base)

                converted = (converter.wide if plan.layout == "wide" else converter.long)(batch, lines)
                parsed_rows += batch.num_rows
                for table in converted.tables:
                    ts = table["ts"]
                    report.note_times(pc.min(ts).value, pc.max(ts).value)
                    result = store.write(org, table if native else _as_readings(table))
                    report.points_written += result.written
                    report.duplicates += result.duplicates
                seen |= converted.signals
            bar.update(task, completed=size)
        finally:
            rejects.close()
    report.rejects_path = rejects.written_path
    report.first_rejects = rejects.first
    report.signals = sorted(seen, key=lambda s: (s.asset, s.signal))
    report.elapsed_s = time.perf_counter() - started
    return report


def _as_readings(table: pa.Table) -> pa.Table:
    """Plain readings types for a sink other than the store, keeping ``value_int`` if present."""
    schema = READINGS_SCHEMA
    if VALUE_INT_FIELD.name in table.column_names:
        schema = schema.append(VALUE_INT_FIELD)
    return table.cast(schema)


def _is_native_store(store: ReadingSink) -> bool:
    """Our store takes dictionary-encoded names (no string copies); other sinks get the schema."""
    from axhub.store.timeseries import TimeSeriesStore

    return isinstance(store, TimeSeriesStore)
