"""Bounds checked BEFORE a file is decoded: small files must not become huge in memory.

A few hundred kilobytes of Parquet can describe gigabytes of values (dictionary-encoded long
strings, run-length encoded repeats), a CSV header can name a million columns, a PNG of half a
megabyte can unpack to 144 megapixels. Every check here reads only what is needed to know the
decoded size (a Parquet footer, a CSV header line, an image header) and refuses the file with a
``FileTooLarge`` naming the file and the limit, before anything big is allocated. Parquet is
then decoded in small batches, counting bytes, so even a footer that lies cannot take the
process past ``max_decoded_bytes``.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Any

from axhub.core.errors import InputProblem, InputValidationError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class FileLimits:
    max_columns: int = _env_int("AXHUB_MAX_FILE_COLUMNS", 2_000)
    max_cells: int = _env_int("AXHUB_MAX_FILE_CELLS", 20_000_000)  # rows x columns
    max_decoded_bytes: int = _env_int("AXHUB_MAX_DECODED_BYTES", 256 << 20)
    max_header_bytes: int = 1 << 20
    max_pixels: int = _env_int("AXHUB_MAX_IMAGE_PIXELS", 50_000_000)  # 50 MP: beyond any inspection camera


class FileTooLarge(InputValidationError):
    """The file would decode to more than a limit allows (HTTP 413)."""

    too_large = True  # the API answers 413 for errors that say so

    def __init__(self, filename: str, problem: str, *, limit: int, found: int | None = None) -> None:
        super().__init__(
            InputProblem(filename, None, None, problem),
            hint="split the file into smaller ones, or ask the operator to raise the limit",
        )
        self.limit = limit
        self.found = found


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The last path component of a client-sent file name, with no way to name a directory:
    ``..``, ``a/../b``, ``C:\\x``, control characters and leading dots are removed."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".").strip()
    return base[:200] or default


def _header_line(raw: bytes, filename: str, limits: FileLimits) -> str:
    end = raw.find(b"\n", 0, limits.max_header_bytes)
    if end < 0 and len(raw) > limits.max_header_bytes:
        raise FileTooLarge(
            filename,
            f"the header line is longer than {limits.max_header_bytes} bytes (too many columns)",
            limit=limits.max_header_bytes,
        )
    head = raw[: end if end >= 0 else len(raw)]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    for encoding in ("utf-8", "cp949"):
        try:
            return head.decode(encoding).rstrip("\r")
        except UnicodeDecodeError:
            continue
    return head.decode("utf-8", errors="replace").rstrip("\r")


def check_csv(raw: bytes, filename: str, limits: FileLimits | None = None) -> list[str]:
    """The header's column names, after refusing too many columns, too many cells or a column
    named twice (which would otherwise silently keep only one of them)."""
    limits = limits or FileLimits()
    line = _header_line(raw, filename, limits)
    delimiter = max([",", ";", "\t", "|"], key=line.count)
    names = next(csv.reader(io.StringIO(line), delimiter=delimiter), [])
    if len(names) > limits.max_columns:
        raise FileTooLarge(
            filename,
            f"{len(names)} columns; at most {limits.max_columns} are accepted",
            limit=limits.max_columns,
            found=len(names),
        )
    rows = raw.count(b"\n")
    if rows * max(len(names), 1) > limits.max_cells:
        raise FileTooLarge(
            filename,
            f"{rows} rows x {len(names)} columns; at most {limits.max_cells} values per file",
            limit=limits.max_cells,
            found=rows * len(names),
        )
    seen: dict[str, int] = {}
    duplicates = []
    for i, name in enumerate(names, start=1):
        key = name.strip()
        if key in seen:
            duplicates.append(
                InputProblem(filename, 1, key, f"column named twice (columns {seen[key]} and {i})")
            )
        seen.setdefault(key, i)
    if duplicates:
        raise InputValidationError(duplicates, hint="rename one of the columns so that every name is unique")
    return [n.strip() for n in names]


def check_table(raw: bytes, fmt: str, filename: str, limits: FileLimits | None = None) -> None:
    """Refuse a table upload that would decode too large (``fmt``: csv, parquet or xlsx); passing
    files are then safe to read with any reader."""
    if fmt == "parquet":
        read_parquet_bounded(raw, filename, limits, keep=False)
    elif fmt == "xlsx":
        check_zip(raw, filename, limits)
    else:
        check_csv(raw, filename, limits)


def check_zip(raw: bytes, filename: str, limits: FileLimits | None = None) -> None:
    """An .xlsx is a zip: refuse one whose members unpack past ``max_decoded_bytes``."""
    import zipfile

    limits = limits or FileLimits()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        return  # the reader reports a broken file in its own words
    if unpacked > limits.max_decoded_bytes:
        raise FileTooLarge(
            filename,
            f"unpacks to {unpacked} bytes; at most {limits.max_decoded_bytes}",
            limit=limits.max_decoded_bytes,
            found=unpacked,
        )


def read_parquet_bounded(
    raw: bytes, filename: str, limits: FileLimits | None = None, *, keep: bool = True
) -> Any:
    """The Parquet file as a pyarrow Table, refusing it by its footer (rows x columns, declared
    uncompressed size) and then while decoding (bytes actually produced). ``keep=False`` only
    checks: batches are dropped as they are counted, so memory stays at one batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    limits = limits or FileLimits()
    try:
        parquet = pq.ParquetFile(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several types for a broken footer
        raise InputValidationError(
            InputProblem(filename, None, None, f"not a readable PARQUET file: {exc}"),
            hint="check the file opens with pandas or DuckDB",
        ) from exc
    meta = parquet.metadata
    if meta.num_columns > limits.max_columns:
        raise FileTooLarge(
            filename,
            f"{meta.num_columns} columns; at most {limits.max_columns} are accepted",
            limit=limits.max_columns,
            found=meta.num_columns,
        )
    cells = meta.num_rows * meta.num_columns
    if cells > limits.max_cells:
        raise FileTooLarge(
            filename,
            f"{meta.num_rows} rows x {meta.num_columns} columns; at most {limits.max_cells} values per file",
            limit=limits.max_cells,
            found=cells,
        )
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if declared > limits.max_decoded_bytes:
        raise FileTooLarge(
            filename,
            f"decodes to {declared} bytes; at most {limits.max_decoded_bytes}",
            limit=limits.max_decoded_bytes,
            found=declared,
        )
    # Decode a few rows first to learn how wide a row really is (dictionary pages can hide
    # megabyte strings behind one-byte indices), then batches sized to stay far below the cap.
    batches = []
    total = 0
    batch_rows = 16
    try:
        iterator = parquet.iter_batches(batch_size=batch_rows)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            if keep:
                batches.append(batch)
            total += _expanded_nbytes(batch)
            if total > limits.max_decoded_bytes:
                raise FileTooLarge(
                    filename,
                    f"decodes to more than {limits.max_decoded_bytes} bytes",
                    limit=limits.max_decoded_bytes,
                )
            if batch_rows == 16 and batch.num_rows:
                per_row = max(1, _expanded_nbytes(batch) // batch.num_rows)
                if per_row * meta.num_rows > limits.max_decoded_bytes:
                    raise FileTooLarge(
                        filename,
                        f"{meta.num_rows} rows of about {per_row} bytes decode to more than "
                        f"{limits.max_decoded_bytes} bytes",
                        limit=limits.max_decoded_bytes,
                        found=per_row * meta.num_rows,
                    )
                batch_rows = int(max(16, min(65_536, limits.max_decoded_bytes // (per_row * 64))))
                offset = batch.num_rows
                iterator = _skip(parquet.iter_batches(batch_size=batch_rows), offset)
    except FileTooLarge:
        raise
    except Exception as exc:
        raise InputValidationError(
            InputProblem(filename, None, None, f"not a readable PARQUET file: {exc}"),
            hint="check the file opens with pandas or DuckDB",
        ) from exc
    if not batches:
        return parquet.schema_arrow.empty_table()
    return pa.Table.from_batches(batches)


def _expanded_nbytes(batch: Any) -> int:
    """Bytes the batch takes once dictionary columns are expanded (as pandas and every later step
    will do): a dictionary of one 2 kB string behind two million indices is 4 GB, not 2 kB."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            values = column.dictionary
            sizes = (
                pc.binary_length(values)
                if pa.types.is_binary(values.type)
                or pa.types.is_string(values.type)
                or pa.types.is_large_string(values.type)
                else None
            )
            if sizes is None:
                total += column.nbytes
            else:
                taken = pc.take(sizes, column.indices)
                total += int(pc.sum(taken).as_py() or 0) + 8 * len(column)
        else:
            total += column.nbytes
    return total


def _skip(batches: Any, rows: int) -> Any:
    """Batches after the first ``rows`` rows (re-reading from the start in a new batch size)."""
    for batch in batches:
        if rows >= batch.num_rows:
            rows -= batch.num_rows
            continue
        yield batch.slice(rows)
        rows = 0


def check_image(raw: bytes, filename: str, limits: FileLimits | None = None) -> tuple[int, int]:
    """Width and height after refusing more than ``max_pixels`` (all frames together), from the
    image header alone; then decodes it (a broken image is a 422, never a 500)."""
    from PIL import Image, UnidentifiedImageError

    limits = limits or FileLimits()
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1) or 1)
            pixels = width * height * frames
            if pixels > limits.max_pixels:
                raise FileTooLarge(
                    filename,
                    f"{width} x {height} pixels x {frames} frame(s); at most {limits.max_pixels} pixels",
                    limit=limits.max_pixels,
                    found=pixels,
                )
            image.load()
    except FileTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise FileTooLarge(filename, f"decompression bomb: {exc}", limit=limits.max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputValidationError(
            InputProblem(filename, None, None, f"not a readable image: {exc}"), hint="upload PNG or JPEG"
        ) from exc
    return width, height
