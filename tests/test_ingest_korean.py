"""Korean factory files through the one file engine: CP949/UTF-8-BOM, decimal commas,
오전/오후 times, .xlsx, errors in Korean and English naming file, row and column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from _korean_files import readings, write_cp949_csv, write_xlsx
from axhub.core.errors import InputValidationError
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_numbers import detect_number_format
from axhub.ingest.file_preview import preview_file
from axhub.ingest.files import CountingSink, ingest_file
from axhub.store.timeseries import TimeSeriesStore

START = datetime(2026, 3, 2, 11, 58)  # local (Asia/Seoul): crosses noon, 오전 -> 오후


def _stored(store: TimeSeriesStore, signal: str) -> pd.DataFrame:
    frame = store.query("acme", "press-01", [signal])
    return frame.sort_values("ts").reset_index(drop=True)


def test_cp949_csv_with_korean_headers_decimal_commas_and_meridiem(tmp_path: Path) -> None:
    rows = readings(START, 10)
    src = write_cp949_csv(tmp_path / "설비1.csv", rows, style=1)
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(
        src, store, "acme", FileMapping(asset="press-01", timezone="Asia/Seoul", ignore=["비고"])
    )
    assert report.settings["encoding"] == "cp949" and report.settings["decimal"] == ","
    assert report.settings["time_column"] == "일시"
    assert report.rows_rejected == 0 and report.points_written == 2 * len(rows)
    vib = _stored(store, "진동")
    assert vib["value"].tolist() == pytest.approx([r[1] for r in rows])
    # 오후 12:00 local is 03:00 UTC; 오전 11:58 is 02:58 UTC.
    first = vib["ts"].iloc[0].to_pydatetime()
    assert first == datetime(2026, 3, 2, 2, 58, tzinfo=UTC)
    assert vib["ts"].iloc[2].to_pydatetime() == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert {s.signal for s in report.signals} == {"진동", "온도"}


def test_utf8_bom_semicolon_thousands_and_bad_cells_named_in_korean(tmp_path: Path) -> None:
    text = (
        "\ufeff시간;압력;유량\n2026/03/02 14:15;1.234,5;2,5\n"
        "2026/03/02 14:16;x;2,6\n2026/03/02 14:17;1.240,0;2,7\n"
    )
    src = tmp_path / "line.csv"
    src.write_bytes(text.encode("utf-8"))
    store = TimeSeriesStore(tmp_path / "ts")
    report = ingest_file(
        src, store, "acme", FileMapping(asset="press-01", timezone="Asia/Seoul"), label="line.csv"
    )
    assert report.settings["encoding"] == "utf-8-sig" and report.settings["delimiter"] == ";"
    assert (report.settings["decimal"], report.settings["thousands"]) == (",", ".")
    assert _stored(store, "압력")["value"].tolist() == [1234.5, 1240.0]
    assert report.values_rejected == 1
    bad = report.first_rejects[0]
    assert bad.render("ko") == "line.csv, 3행, '압력' 열: 숫자가 아닙니다: 'x'"
    assert bad.render("en") == "line.csv, row 3, column '압력': not a number: 'x'"


def test_xlsx_with_excel_dates_and_with_korean_text_times(tmp_path: Path) -> None:
    rows = readings(START, 5, seed=1)
    store = TimeSeriesStore(tmp_path / "ts")
    for name, text in (("a.xlsx", False), ("b.xlsx", True)):
        src = write_xlsx(tmp_path / name, rows, text_times=text)
        report = ingest_file(src, store, "acme", FileMapping(asset="press-01", timezone="Asia/Seoul"))
        assert report.settings["kind"] == "xlsx" and report.settings["sheet"] == "데이터"
        assert report.rows_rejected == 0 and report.points_written + report.duplicates == 2 * len(rows)
    vib = _stored(store, "진동")
    assert len(vib) == len(rows)  # the second workbook held the same readings: no duplicates
    assert vib["ts"].iloc[0].to_pydatetime() == datetime(2026, 3, 2, 2, 58, tzinfo=UTC)


def test_whole_file_refusals_say_so_in_the_users_language(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_bytes("일시,진동\n어제,1\n그제,2\n".encode("cp949"))
    with pytest.raises(InputValidationError) as err:
        ingest_file(src, CountingSink(), "acme", FileMapping(asset="m"), label="bad.csv")
    message, hint = err.value.render("ko")
    assert message.startswith("파일 전체를 받을 수 없어") and "bad.csv" in message and "'일시' 열" in message
    assert hint and all(not ("a" <= ch <= "z") for ch in hint.replace("%Y-%m-%d %H:%M:%S", ""))
    assert err.value.render("en")[0].startswith("The whole file was refused")
    # Not text at all (random bytes) and a broken workbook: refused, never a traceback.
    (tmp_path / "noise.csv").write_bytes(bytes(range(128, 256)) * 10)
    with pytest.raises(InputValidationError, match="UTF-8 or CP949"):
        ingest_file(tmp_path / "noise.csv", CountingSink(), "acme", FileMapping(asset="m"))
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputValidationError) as err:
        ingest_file(
            tmp_path / "broken.xlsx", CountingSink(), "acme", FileMapping(asset="m"), label="broken.xlsx"
        )
    assert "broken.xlsx" in err.value.render("ko")[0] and str(tmp_path) not in err.value.render("ko")[0]
    # A wrong encoding given on purpose is refused with the byte where it broke.
    utf = tmp_path / "utf.csv"
    utf.write_text("시간,값\n2026-03-02 10:00,1\n", encoding="utf-8")
    with pytest.raises(InputValidationError, match="ascii"):
        ingest_file(utf, CountingSink(), "acme", FileMapping(asset="m", encoding="ascii"))


def test_preview_counts_the_whole_file_and_offers_editable_settings(tmp_path: Path) -> None:
    rows = readings(START, 24 * 60, seed=2, step_s=30)  # a day, 30 s apart: far more than 64 KB
    src = write_cp949_csv(tmp_path / "day.csv", rows)
    with open(src, "ab") as fh:  # a bad row at the very end
        fh.write('2026-03-03 오전 10:00:00,"오류","40,0",\r\n'.encode("cp949"))
    assert src.stat().st_size > 64 * 1024
    preview = preview_file(src, FileMapping(asset="press-01", timezone="Asia/Seoul"), label="day.csv", rows=5)
    assert preview.refused == []
    assert preview.settings["encoding"] == "cp949" and preview.settings["decimal"] == ","
    assert preview.report.rows_read == len(rows) + 1 and preview.report.values_rejected == 1
    assert preview.points == {"진동": len(rows) + 0, "온도": len(rows) + 1}
    assert [c.name for c in preview.columns] == ["일시", "진동", "온도", "비고"]
    assert [c.role for c in preview.columns] == ["time", "signal", "signal", "ignore"]
    first = preview.rows[0]
    assert first.line == 2 and first.time == "2026-03-02T11:58:00+09:00"
    assert first.values["진동"] == pytest.approx(rows[0][1])
    # Editing a setting re-previews: read as UTF-8 on purpose -> refused, and it says why.
    again = preview_file(src, FileMapping(asset="press-01", encoding="utf-8"), label="day.csv")
    assert again.refused and again.refused[0].code == "encoding_invalid"


def test_number_format_detection() -> None:
    assert detect_number_format(["1,5", "2,25"]) == (",", "")
    assert detect_number_format(["1,234.5", "12.5"]) == (".", ",")
    assert detect_number_format(["1.234,5", "2,5"]) == (",", ".")
    assert detect_number_format(["12.5", "3"]) == (".", "")


def test_library_errors_never_show_a_server_path(tmp_path: Path) -> None:
    from axhub.ingest.file_readers import hide_paths

    assert (
        hide_paths("cannot open '/tmp/axhub-file-x/a.csv' (2026/03/02)")
        == "cannot open '<file>' (2026/03/02)"
    )
    bad = tmp_path / "깨진.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputValidationError) as err:
        ingest_file(bad, CountingSink(), "acme", FileMapping(asset="m"), label="깨진.parquet")
    message, _hint = err.value.render("ko")
    assert "깨진.parquet" in message and str(tmp_path) not in message and err.value.whole_file
