"""A whole table file as a pandas DataFrame (datasets of records, not readings), read with the
same detection as the file engine: encoding (UTF-8, BOM, CP949), delimiter, decimal comma and
thousands separators; ``.xlsx`` through openpyxl; Parquet as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from axhub.core.errors import InputValidationError, problem
from axhub.ingest.file_encoding import detect_encoding, read_text_sample
from axhub.ingest.file_numbers import detect_number_format
from axhub.ingest.file_readers import file_kind, hide_paths, sniff_delimiter


def read_table(path: Path, label: str) -> pd.DataFrame:
    kind = file_kind(path)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "xlsx":
            return pd.read_excel(path, engine="openpyxl")
    except Exception as exc:  # pandas/pyarrow/openpyxl raise many types for a broken file
        raise _unreadable(label, kind, exc) from exc
    encoding = detect_encoding(path, label)
    sample = read_text_sample(path, encoding)
    delimiter = sniff_delimiter(sample)
    import csv

    rows = list(csv.reader(sample.splitlines()[1:200], delimiter=delimiter))
    decimal, thousands = detect_number_format(cell for row in rows for cell in row)
    options: dict[str, Any] = {"decimal": decimal}
    if thousands:
        options["thousands"] = thousands
    try:
        return pd.read_csv(path, encoding=encoding, sep=delimiter, **options)
    except Exception as exc:
        raise _unreadable(label, "CSV", exc) from exc


def _unreadable(label: str, kind: str, exc: BaseException) -> InputValidationError:
    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    reason = hide_paths(reason)[:200]
    return InputValidationError(
        problem(label, None, None, "file_unreadable", kind=kind.upper(), reason=reason), whole_file=True
    )
