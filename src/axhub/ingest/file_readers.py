"""Reading CSV, ``.xlsx`` and Parquet files as Arrow record batches, block by block.

* CSV: ``pyarrow.csv.open_csv`` in the detected (or given) encoding and delimiter; a
  background thread parses the next block while this one is converted (Arrow releases the GIL).
* ``.xlsx``: openpyxl's read-only (streaming) reader; cells keep their types (Excel dates
  arrive as datetimes, numbers as numbers), text cells are parsed like CSV text.
* Parquet: batch by batch.

Memory depends on the block size, not the file size.
"""

from __future__ import annotations

import csv
import datetime as dt
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from axhub.core.errors import InputValidationError, problem
from axhub.core.reading_rules import INT64_MAX, INT64_MIN
from axhub.core.readings import FLOAT_EXACT_INT
from axhub.ingest.file_encoding import detect_encoding, read_text_sample
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_plan import Plan
from axhub.ingest.file_report import IngestReport, Rejects, RowNumbers

DELIMITERS = [",", ";", "\t", "|"]
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
Progress = Callable[[int], None]


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in EXCEL_SUFFIXES:
        return "xlsx"
    return "csv"


def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the first lines into the same (largest) number of fields."""
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the last line of a sample may be cut
    best, best_fields = ",", 1
    for delim in DELIMITERS:
        counts = {len(next(csv.reader([ln], delimiter=delim))) for ln in lines} if lines else {1}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delim, fields
    return best


def _prefetch(source: Iterator[pa.RecordBatch], depth: int = 1) -> Iterator[pa.RecordBatch]:
    """Parse the next block in a thread (Arrow releases the GIL) while this one is processed."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        slots.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as exc:  # handed to the consumer
            slots.put(("error", exc))

    thread = threading.Thread(target=pump, name="csv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()


@dataclass
class Source:
    """An opened input file: its header, how it was read, and its batches."""

    path: Path
    label: str
    kind: str
    header: list[str]
    first_line: int
    settings: dict[str, Any] = field(default_factory=dict)
    sample: str = ""  # CSV: the first text, for detecting number formats

    def batches(
        self,
        plan: Plan,
        rows: RowNumbers,
        block_bytes: int,
        rejects: Rejects,
        report: IngestReport,
        on_progress: Progress,
    ) -> Iterator[pa.RecordBatch]:
        if self.kind == "parquet":
            return _parquet_batches(self.path, plan, max(block_bytes // 256, 1024), on_progress)
        if self.kind == "xlsx":
            return _xlsx_batches(self, plan, max(block_bytes // 256, 1024), on_progress)
        return _csv_batches(self, plan, rows, block_bytes, rejects, report, on_progress)


def open_source(path: Path, mapping: FileMapping, label: str) -> Source:
    """Open ``path`` and read its header; encoding and delimiter detected unless given."""
    kind = file_kind(path)
    if kind == "parquet":
        try:
            header = pq.ParquetFile(path).schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(label, "Parquet", exc) from exc
        return Source(path, label, kind, list(header), 1)
    if kind == "xlsx":
        return _open_xlsx(path, mapping, label)
    encoding = detect_encoding(path, label, mapping.encoding)
    sample = read_text_sample(path, encoding)
    delimiter = mapping.delimiter or sniff_delimiter(sample)
    first = next(csv.reader(sample.splitlines()[:1], delimiter=delimiter), None)
    if not first or not any(h.strip() for h in first):
        raise InputValidationError(problem(label, 1, None, "file_empty"), whole_file=True)
    header = [h.strip() for h in first]
    settings = {"encoding": encoding, "delimiter": delimiter}
    return Source(path, label, kind, header, 2, settings, sample)


def hide_paths(text: str) -> str:
    """Server paths never reach a user: '/tmp/axhub-x/a.csv' -> '<file>' (dates like 2026/03/02 stay)."""
    return re.sub(r"(?<![\w.])(?:/[\w.\-]+){2,}/?", "<file>", text)


def _unreadable(
    label: str, kind: str, exc: BaseException, *, whole_file: bool = True
) -> InputValidationError:
    # The reason of a library error may name a temp path: keep its first line, no paths.
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = hide_paths(reason)[:200]
    return InputValidationError(
        problem(label, None, None, "file_unreadable", kind=kind, reason=reason), whole_file=whole_file
    )


def _csv_batches(
    source: Source,
    plan: Plan,
    rows: RowNumbers,
    block_bytes: int,
    rejects: Rejects,
    report: IngestReport,
    on_progress: Progress,
) -> Iterator[pa.RecordBatch]:
    def invalid_row(row: Any) -> str:
        if row.number is not None:
            rows.skipped.append(int(row.number))
        if row.text.strip():
            report.rows_read += 1
            report.rows_rejected += 1
            rejects.add(
                row.number,
                None,
                "field_count",
                row.text,
                actual=row.actual_columns,
                expected=row.expected_columns,
            )
        return "skip"

    encoding = source.settings["encoding"]
    stream = pa.OSFile(str(source.path))
    try:
        reader = pv.open_csv(
            stream,
            read_options=pv.ReadOptions(
                use_threads=False,
                block_size=block_bytes,
                encoding="utf8" if encoding in {"utf-8", "utf-8-sig", "utf_8"} else encoding,
            ),
            parse_options=pv.ParseOptions(
                delimiter=source.settings["delimiter"],
                invalid_row_handler=invalid_row,
                ignore_empty_lines=False,
            ),
            convert_options=pv.ConvertOptions(
                column_types={c: pa.string() for c in plan.needed()},
                include_columns=plan.needed(),
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        stream.close()
        raise _unreadable(source.label, "CSV", exc) from exc
    try:
        for batch in _prefetch(iter(reader)):
            on_progress(stream.tell())
            yield batch
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        # Mid-file: blocks before this one may be stored already, so not a whole-file refusal.
        raise _unreadable(source.label, "CSV", exc, whole_file=False) from exc
    finally:
        stream.close()


def _parquet_batches(
    path: Path, plan: Plan, batch_rows: int, on_progress: Progress
) -> Iterator[pa.RecordBatch]:
    pf = pq.ParquetFile(path)
    total_rows = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    done = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=plan.needed()):
        done += batch.num_rows
        on_progress(int(size * done / total_rows))
        yield batch


# ---------------------------------------------------------------------- .xlsx
def _workbook(path: Path, label: str) -> Any:
    import zipfile

    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise _unreadable(label, "Excel (.xlsx)", exc) from exc


def _sheet(book: Any, mapping: FileMapping, label: str) -> Any:
    if mapping.sheet is None:
        return book.worksheets[0]
    if mapping.sheet not in book.sheetnames:
        raise InputValidationError(
            problem(
                label, None, None, "sheet_missing", sheet=mapping.sheet, sheets=", ".join(book.sheetnames)
            ),
            whole_file=True,
        )
    return book[mapping.sheet]


def _xlsx_rows(path: Path, mapping: FileMapping, label: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(sheet row number, values) of every row; the workbook is closed at the end."""
    book = _workbook(path, label)
    try:
        sheet = _sheet(book, mapping, label)
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    except InputValidationError:
        raise
    except Exception as exc:  # openpyxl raises many types for a damaged sheet
        raise _unreadable(label, "Excel (.xlsx)", exc, whole_file=False) from exc
    finally:
        book.close()


def _open_xlsx(path: Path, mapping: FileMapping, label: str) -> Source:
    book = _workbook(path, label)
    try:
        sheet = _sheet(book, mapping, label)
        sheet_name = sheet.title
        header_row, header = 0, []
        for number, values in enumerate(sheet.iter_rows(values_only=True, max_row=50), start=1):
            if any(v is not None and str(v).strip() for v in values):
                header_row = number
                header = [str(v).strip() if v is not None else f"column{j + 1}" for j, v in enumerate(values)]
                break
    finally:
        book.close()
    while header and header[-1].startswith("column") and header[-1][6:].isdigit():
        header.pop()  # trailing empty cells of a formatted sheet
    if not header:
        raise InputValidationError(problem(label, 1, None, "file_empty"), whole_file=True)
    return Source(
        path, label, "xlsx", header, header_row + 1, {"sheet": sheet_name, "header_row": header_row}
    )


def _column_array(values: list[Any]) -> pa.Array:
    """One column of cells as a typed Arrow array: datetimes, numbers, or text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, dt.datetime) for v in present):
        return pa.array(values, pa.timestamp("us"))
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if any(type(v) is int and abs(v) > FLOAT_EXACT_INT for v in present):
            # Integers float64 would round (openpyxl reads a cell '9007199254740993' as an int):
            # int64 if they all are ints that fit, else text, which file_values reads exactly.
            if all(type(v) is int and INT64_MIN <= v <= INT64_MAX for v in present):
                return pa.array(values, pa.int64())
            return pa.array([None if v is None else str(v) for v in values], pa.string())
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(
        [
            None
            if v is None or (isinstance(v, str) and not v.strip())
            else v.isoformat(sep=" ")
            if isinstance(v, dt.datetime)
            else v.isoformat()
            if isinstance(v, dt.date | dt.time)
            else str(v)
            for v in values
        ],
        pa.string(),
    )


def _xlsx_batches(
    source: Source, plan: Plan, batch_rows: int, on_progress: Progress
) -> Iterator[pa.RecordBatch]:
    header = source.header
    index = {name: j for j, name in enumerate(header)}
    wanted = [(name, index[name]) for name in plan.needed()]
    first = source.first_line
    size = source.path.stat().st_size
    mapping = FileMapping(sheet=source.settings.get("sheet"))
    buffer: list[tuple[Any, ...]] = []
    last_row = first - 1

    def flush() -> pa.RecordBatch:
        columns = {
            name: _column_array([row[j] if j < len(row) else None for row in buffer]) for name, j in wanted
        }
        return pa.RecordBatch.from_pydict(columns)

    for number, values in _xlsx_rows(source.path, mapping, source.label):
        if number < first:
            continue
        # Keep row numbers exact: a gap (openpyxl skips nothing, but be safe) becomes blank rows.
        while last_row + 1 < number:
            buffer.append(())
            last_row += 1
        buffer.append(values)
        last_row = number
        if len(buffer) >= batch_rows:
            yield flush()
            buffer = []
            on_progress(size // 2)
    if buffer:
        yield flush()
    on_progress(size)
