"""The whole loop through the CLI, as separate `axhub` processes: a new company, a machine,
CP949 CSV and .xlsx files, training on a normal day, a backtest that finds the injected fault,
deployment, a new faulty day scored into an alert with the right signal, reading and normal
range, acknowledged with a note. Korean or English output, never both; times in site time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from _korean_files import readings, write_cp949_csv, write_xlsx

DAY1 = datetime(2026, 3, 2, 0, 0)
FAULT_MINUTE = 600  # 10:00 site time


def _axhub(env: dict[str, str], *args: str, ok: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "axhub.cli.main", *args], env=env, capture_output=True, text=True, timeout=300
    )
    out = done.stdout + done.stderr
    assert (done.returncode == 0) == ok, out
    assert "Traceback" not in out, out
    return out


def test_cli_journey_from_files_to_an_acknowledged_alert(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AXHUB_HOME": str(tmp_path / "home"),
        "AXHUB_DEFAULT_ORG": "hanbit",
        "LANG": "ko_KR.UTF-8",
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    env.pop("LC_ALL", None)
    day1 = write_cp949_csv(tmp_path / "1일차.csv", readings(DAY1, 24 * 60, seed=1))
    day2 = write_xlsx(
        tmp_path / "2일차.xlsx", readings(DAY1 + timedelta(days=1), 24 * 60, fault_at=FAULT_MINUTE, seed=2)
    )
    day3 = write_cp949_csv(
        tmp_path / "3일차.csv",
        readings(DAY1 + timedelta(days=2), 24 * 60, fault_at=FAULT_MINUTE, seed=3),
        style=1,
    )

    _axhub(env, "init", "--org", "한빛정밀", "--slug", "hanbit")
    out = _axhub(env, "machines", "add", "프레스 1", "--slug", "press-01", "--site", "창원 1공장")
    assert "Asia/Seoul" in out and "press-01" in out

    out = _axhub(env, "ingest", str(day1), "--asset", "press-01")  # the locale says Korean
    assert "저장된 값" in out and "2,880" in out and "rows read" not in out
    assert "2026-03-02 00:00:00 – 2026-03-02 23:59:00" in out  # site time
    out = _axhub(env, "ingest", str(day2), "--asset", "press-01", "--lang", "en")
    assert "points written" in out and "저장된 값" not in out
    assert "the machine's saved mapping" in out and "저장된 값" not in out
    # A file the engine refuses as a whole: one clear line, no traceback, nothing stored.
    (tmp_path / "bad.csv").write_bytes("일시,진동\n어제,1\n그제,2\n".encode("cp949"))
    out = _axhub(env, "ingest", str(tmp_path / "bad.csv"), "--asset", "press-01", ok=False)
    assert "파일 전체를 받을 수 없어" in out and "'일시' 열" in out

    out = _axhub(
        env,
        "train",
        "--asset",
        "press-01",
        "--start",
        "2026-03-02 00:00",
        "--end",
        "2026-03-03 00:00",
        "--interval",
        "60s",
    )
    version = re.search(r"mv_[0-9a-f]+", out)
    assert version, out
    assert "진동 1.8" in out  # the normal range learned, in engineering units

    out = _axhub(env, "backtest", "--asset", "press-01", "--model", version.group(0), "--lang", "en")
    fault_day2 = (DAY1 + timedelta(days=1, minutes=FAULT_MINUTE)).strftime("%Y-%m-%d %H:")
    assert fault_day2 in out and "진동" in out and "normal 1.8" in out, out

    out = _axhub(env, "deploy", version.group(0), "--asset", "press-01")
    assert "배포" in out
    out = _axhub(env, "score", str(day3), "--asset", "press-01")
    alert_ids = re.findall(r"alert_[0-9a-f]+", out)
    assert alert_ids, out
    fault_day3 = (DAY1 + timedelta(days=2, minutes=FAULT_MINUTE)).strftime("%Y-%m-%d %H:")
    line = next(ln for ln in out.splitlines() if fault_day3 in ln)
    alert_id = re.search(r"alert_[0-9a-f]+", line).group(0)  # type: ignore[union-attr]
    assert "진동" in line and "정상 1.8" in line

    out = _axhub(env, "alerts", "list")
    assert "시각(Asia/Seoul)" in out and fault_day3 in out
    _axhub(env, "alerts", "ack", alert_id, "--by", "kim", "--note", "베어링 점검 예정")
    out = _axhub(env, "alerts", "show", alert_id, "--lang", "en")
    assert "acknowledged: kim" in out and "베어링 점검 예정" in out and "normal 1.80 ± 0.1" in out
    out = _axhub(env, "query", "press-01", "--signals", "진동", "--start", f"{fault_day3}00", "--limit", "3")
    assert f"{fault_day3}00:00+09:00" in out
    out = _axhub(env, "deadletters")
    assert "거부된 데이터" in out
