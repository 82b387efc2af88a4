"""Batch and part records of a process from a file (CSV in any encoding, ``.xlsx``, Parquet).

One row per batch (parts made, parts passed) or per part (a pass/fail column). Headers may be
Korean or English (``배치``/``batch``, ``로트``/``lot``, ``부품수``/``parts``, ``합격수``/``passed``,
``판정``/``result``, ``시작``/``start``, ``종료``/``end``); setpoint and context columns are named
as the cell names them. Times without a zone are the site's local time (Asia/Seoul by
default). A file with any bad value is refused as a whole, with every problem's row and
column, so a half-loaded file never trains a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from axhub.core.errors import InputProblem, InputValidationError, problem
from axhub.ingest.file_table import read_table

ALIASES: dict[str, tuple[str, ...]] = {
    "batch_key": (
        "batch_key",
        "batch",
        "batch id",
        "part",
        "part id",
        "배치",
        "배치번호",
        "부품번호",
        "일련번호",
    ),
    "lot": ("lot", "material lot", "로트", "자재로트", "소재로트"),
    "n_parts": ("n_parts", "parts", "count", "부품수", "수량", "생산수"),
    "n_passed": ("n_passed", "passed", "good", "합격수", "양품수"),
    "result": ("result", "pass", "판정", "합격", "검사결과"),
    "started_at": ("started_at", "start", "started", "시작", "시작시각"),
    "finished_at": ("finished_at", "end", "finished", "종료", "종료시각"),
}
PASS_WORDS = {"1", "true", "yes", "y", "pass", "passed", "ok", "good", "합격", "양품", "예"}
FAIL_WORDS = {"0", "false", "no", "n", "fail", "failed", "ng", "bad", "불합격", "불량", "아니오"}
MAX_PROBLEMS = 50


def _find(columns: Sequence[str], names: Sequence[str]) -> str | None:
    wanted = {n.casefold() for n in names}
    return next((c for c in columns if str(c).strip().casefold() in wanted), None)


def read_batch_records(
    path: Path,
    label: str,
    setpoints: Sequence[str],
    *,
    context_names: Sequence[str] = (),
    timezone: str = "Asia/Seoul",
) -> list[dict[str, Any]]:
    """Records for ``ProcessService.record_batches``; raises ``InputValidationError``."""
    frame = read_table(path, label)
    columns = [str(c) for c in frame.columns]
    frame.columns = pd.Index(columns)
    found = {key: _find(columns, names) for key, names in ALIASES.items()}
    header = ", ".join(columns)[:300]
    missing: list[InputProblem] = []
    for name in [*setpoints, *context_names]:
        if _find(columns, [name]) is None:
            missing.append(
                problem(label, None, name, "column_missing", column=name, what="value", header=header)
            )
    if found["batch_key"] is None:
        missing.append(
            problem(
                label, None, "배치/batch", "column_missing", column="배치/batch", what="value", header=header
            )
        )
    if found["n_parts"] is None and found["result"] is None:
        missing.append(
            problem(
                label,
                None,
                "판정/result",
                "column_missing",
                column="판정/result",
                what="value",
                header=header,
            )
        )
    if missing:
        raise InputValidationError(missing, whole_file=True)

    problems: list[InputProblem] = []
    records = []
    for i, row in enumerate(frame.to_dict("records")):
        line = i + 2  # the header is row 1
        rec: dict[str, Any] = {"batch_key": str(row[found["batch_key"]]).strip()}
        rec["settings"] = {n: _number(row, _find(columns, [n]), label, line, problems) for n in setpoints}
        rec["context"] = {n: _number(row, _find(columns, [n]), label, line, problems) for n in context_names}
        if found["lot"] is not None and not _blank(row[found["lot"]]):
            rec["lot"] = str(row[found["lot"]]).strip()
        if found["n_parts"] is not None:
            rec["n_parts"] = int(_number(row, found["n_parts"], label, line, problems))
            rec["n_passed"] = (
                int(_number(row, found["n_passed"], label, line, problems)) if found["n_passed"] else 0
            )
        else:
            rec["n_parts"], rec["n_passed"] = 1, _verdict(row, found["result"], label, line, problems)
        for key in ("started_at", "finished_at"):
            column = found[key]
            if column is not None and not _blank(row[column]):
                rec[key] = _time(row[column], timezone, label, line, column, problems)
        records.append(rec)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InputValidationError(problems, whole_file=True)
    return records


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _number(
    row: Mapping[Any, Any], column: str | None, label: str, line: int, problems: list[InputProblem]
) -> float:
    value = row.get(column) if column else None
    try:
        number = (
            float(str(value).strip().replace(",", "")) if not isinstance(value, int | float) else float(value)
        )
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        problems.append(problem(label, line, column, "not_a_number", raw=str(value)))
        return math.nan
    return number


def _verdict(
    row: Mapping[Any, Any], column: str | None, label: str, line: int, problems: list[InputProblem]
) -> int:
    text = str(row.get(column or "", "")).strip().casefold()
    if text.endswith(".0"):
        text = text[:-2]
    if text in PASS_WORDS:
        return 1
    if text not in FAIL_WORDS:
        problems.append(problem(label, line, column, "not_a_number", raw=text))
    return 0


def _time(value: Any, timezone: str, label: str, line: int, column: str, problems: list[InputProblem]) -> str:
    try:
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise ValueError(value)
    except (ValueError, TypeError):
        problems.append(problem(label, line, column, "bad_time", raw=str(value)))
        return ""
    if ts.tzinfo is None:
        ts = ts.tz_localize(timezone)
    return str(ts.tz_convert("UTC").isoformat())
