"""Files as a small Korean factory exports them: CP949 CSV from Excel on Korean Windows (Korean
headers, decimal commas, 오전/오후 times) and .xlsx workbooks. Generated, never committed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HEADER = ["일시", "진동", "온도", "비고"]


def korean_time(t: datetime, style: int = 0) -> str:
    word = "오전" if t.hour < 12 else "오후"
    hour12 = t.hour % 12 or 12
    if style == 0:
        return f"{t:%Y-%m-%d} {word} {hour12}:{t:%M:%S}"
    return f"{t.year}. {t.month}. {t.day}. {word} {hour12}:{t:%M:%S}"


def readings(
    start: datetime, minutes: int, *, fault_at: int | None = None, seed: int = 0, step_s: int = 60
) -> list[tuple[datetime, float, float]]:
    """(local time, vibration mm/s, temperature degC); from ``fault_at`` the vibration is high."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(minutes * 60 // step_s):
        t = start + timedelta(seconds=i * step_s)
        vib = 1.8 + rng.normal(0, 0.1)
        temp = 40.0 + rng.normal(0, 0.5)
        if fault_at is not None and fault_at <= i < fault_at + 30:
            vib += 2.6
        rows.append((t, round(vib, 2), round(temp, 1)))
    return rows


def write_cp949_csv(path: Path, rows: list[tuple[datetime, float, float]], *, style: int = 0) -> Path:
    """Excel on Korean Windows: CP949, comma-separated, decimal commas quoted, Korean note column."""
    lines = [",".join(HEADER)]
    for i, (t, vib, temp) in enumerate(rows):
        v = f'"{vib:.2f}"'.replace(".", ",")
        c = f'"{temp:.1f}"'.replace(".", ",")
        lines.append(f"{korean_time(t, style if i % 2 else 0)},{v},{c},{'점검' if i == 3 else ''}")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp949"))
    return path


def write_xlsx(path: Path, rows: list[tuple[datetime, float, float]], *, text_times: bool = False) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "데이터"
    sheet.append(HEADER)
    for t, vib, temp in rows:
        sheet.append([korean_time(t) if text_times else t, vib, temp, None])
    book.save(path)
    return path
