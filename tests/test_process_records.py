"""Batch and part records from files: Korean headers in CP949, an Excel workbook of single
parts with pass/fail words, and a bad file refused whole with its row and column named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from axhub.core.errors import InputValidationError
from axhub.ingest.process_records import read_batch_records

SETPOINTS = ["이송량", "주축회전수"]


def test_korean_headers_in_cp949_with_local_times(tmp_path: Path) -> None:
    path = tmp_path / "배치기록.csv"
    path.write_bytes(
        (
            "배치번호,로트,이송량,주축회전수,부품수,합격수,시작\n"
            "B-001,LOT-A,0.10,7000,40,31,2026-03-02 08:00:00\n"
            'B-002,LOT-B,0.11,"7,400",40,35,2026-03-02 09:30:00\n'
        ).encode("cp949")
    )
    records = read_batch_records(path, path.name, SETPOINTS)
    assert [r["batch_key"] for r in records] == ["B-001", "B-002"]
    assert records[1]["settings"] == {"이송량": 0.11, "주축회전수": 7400.0}
    assert (records[0]["n_parts"], records[0]["n_passed"], records[0]["lot"]) == (40, 31, "LOT-A")
    # Local time in Seoul, stored in UTC.
    assert records[0]["started_at"] == "2026-03-01T23:00:00+00:00"


def test_single_parts_from_excel_with_pass_fail_words(tmp_path: Path) -> None:
    path = tmp_path / "parts.xlsx"
    pd.DataFrame(
        {"part": ["P1", "P2", "P3"], "이송량": [0.1, 0.12, 0.14], "주축회전수": [7000, 7200, 7400],
         "판정": ["합격", "불합격", "OK"]}
    ).to_excel(path, index=False)  # fmt: skip
    records = read_batch_records(path, path.name, SETPOINTS)
    assert [(r["n_parts"], r["n_passed"]) for r in records] == [(1, 1), (1, 0), (1, 1)]


def test_a_bad_file_is_refused_whole_naming_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "배치,이송량,주축회전수,부품수,합격수\nB1,0.1,7000,40,30\nB2,빠름,7000,40,30\n", encoding="utf-8"
    )
    with pytest.raises(InputValidationError) as err:
        read_batch_records(path, "bad.csv", SETPOINTS)
    [p] = err.value.problems
    assert (p.file, p.row, p.field) == ("bad.csv", 3, "이송량")
    assert p.render("ko").startswith("bad.csv, 3행, '이송량' 열")
    missing = tmp_path / "missing.csv"
    missing.write_text("배치,이송량,부품수,합격수\nB1,0.1,40,30\n", encoding="utf-8")
    with pytest.raises(InputValidationError) as err:
        read_batch_records(missing, "missing.csv", SETPOINTS)
    assert [p.field for p in err.value.problems] == ["주축회전수"]
