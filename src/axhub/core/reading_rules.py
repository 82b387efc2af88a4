"""The one rule for readings, whatever path they came by (file, HTTP, MQTT, OPC UA, Modbus, edge).

A reading is stored only if

- its **signal name** is a name people write: 1-128 characters, Unicode letters and digits
  (Korean 한글, Japanese, accented Latin ...), combining marks, spaces and ``_ - . ( ) [ ] # % ° + : @ ~``,
  starting with a letter or digit, never ``..`` and nothing else. So ``온도``, ``Door Open`` and
  ``Zone1 °C`` are names; ``../../etc/passwd`` (a path), ``<img src=x>`` (markup), a name with a
  control character, a tab or a comma (lists of signals are comma-separated) is not.
- its **asset** is an asset id: the asset's slug, which names a folder of the time-series store, so
  ASCII letters, digits, ``_ . -`` (``core.ids.check_path_safe``). People see the asset's display
  name (Korean or English); connectors map other names onto ids (``assets:`` in a topic rule).
- its **time** lies in [2000-01-01, 2100-01-01) UTC: anything else is nearly always a unit mistake
  (seconds read as milliseconds) or a placeholder (year 1, 9999-12-31) that breaks queries later.
- its **value** is a finite float64 (``1e39`` is fine, NaN and ±infinity are not) or missing (null,
  e.g. a bad-quality reading). An integer value beyond ±2^53 travels exactly in ``value_int``
  (``core.readings``) if it fits int64; one that does not (a UInt64 above 2^63 - 1) is refused
  rather than rounded (``integer_problem``).
- its **quality** is 0 (good), 1 (uncertain) or 2 (bad).

Every reason has a stable ``code`` and an English and a Korean text, so an API answer, a dead
letter and a dashboard page can each say it in their reader's language.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MIN_TS_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_TS_US = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z (exclusive)
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
MAX_NAME_CHARS = 128
# Punctuation people put in signal names besides letters, digits and marks. Not '/' or '\'
# (paths), '<' '>' '&' '"' "'" (markup), ',' (signal lists), ';' '=' '*' '?' (queries, globs).
NAME_PUNCTUATION = frozenset("_-. ()[]#%°+:@~")
_SHOWN_PUNCT = "_ - . ( ) [ ] # % ° + : @ ~"
_ASSET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class Problem:
    """Why one reading (or one name) cannot be stored."""

    code: str
    en: str
    ko: str

    def text(self, lang: str = "en") -> str:
        return self.ko if lang == "ko" else self.en

    def __str__(self) -> str:
        return self.en


def _show(name: str) -> str:
    shown = name if len(name) <= 40 else name[:40] + "…"
    return repr(shown)


def signal_name_problem(name: object) -> Problem | None:
    """None if ``name`` may be a signal name, else why not."""
    if not isinstance(name, str) or not name:
        return Problem("name_empty", "signal name is missing", "신호 이름이 없습니다")
    return _signal_name_problem(name)


@lru_cache(maxsize=65_536)
def _signal_name_problem(name: str) -> Problem | None:
    if len(name) > MAX_NAME_CHARS:
        return Problem(
            "name_too_long",
            f"signal name is {len(name)} characters; at most {MAX_NAME_CHARS} are allowed",
            f"신호 이름이 {len(name)}자입니다. 최대 {MAX_NAME_CHARS}자까지 쓸 수 있습니다",
        )
    if ".." in name:
        return Problem(
            "name_path",
            f"signal name {_show(name)} contains '..'",
            f"신호 이름 {_show(name)}에 '..'이 들어 있습니다",
        )
    first = unicodedata.category(name[0])
    if not (first.startswith("L") or first.startswith("N")):
        return Problem(
            "name_start",
            f"signal name {_show(name)} must start with a letter or digit",
            f"신호 이름 {_show(name)}은(는) 글자나 숫자로 시작해야 합니다",
        )
    if name != name.strip():
        return Problem(
            "name_space",
            f"signal name {_show(name)} ends with a space",
            f"신호 이름 {_show(name)}이(가) 공백으로 끝납니다",
        )
    for ch in name:
        if ch in NAME_PUNCTUATION:
            continue
        if unicodedata.category(ch)[0] in "LNM":
            continue
        return Problem(
            "name_char",
            f"signal name {_show(name)} contains {ch!r}: use letters, digits, spaces and {_SHOWN_PUNCT}",
            f"신호 이름 {_show(name)}에 쓸 수 없는 문자 {ch!r}가 있습니다: "
            f"글자, 숫자, 공백과 {_SHOWN_PUNCT}만 쓸 수 있습니다",
        )
    return None


def asset_id_problem(name: object) -> Problem | None:
    """None if ``name`` may be an asset id (the slug that names the asset's folder), else why not."""
    if not isinstance(name, str) or not name:
        return Problem("asset_empty", "asset is missing", "설비 ID가 없습니다")
    return _asset_id_problem(name)


@lru_cache(maxsize=65_536)
def _asset_id_problem(name: str) -> Problem | None:
    ok = (
        len(name) <= MAX_NAME_CHARS
        and set(name) <= _ASSET_CHARS
        and name[0].isascii()
        and name[0].isalnum()
        and ".." not in name
    )
    if ok:
        return None
    return Problem(
        "asset_id",
        f"asset {_show(name)} is not an asset id: ids use ASCII letters, digits, '_', '.' and '-' "
        "(e.g. press-01); the Korean or English name is the asset's display name",
        f"{_show(name)}은(는) 설비 ID로 쓸 수 없습니다: ID는 영문자, 숫자, '_', '.', '-'로 씁니다"
        "(예: press-01). 한글 이름은 설비의 표시 이름으로 넣으세요",
    )


def asset_id_from_name(name: str) -> str:
    """A stable asset id for a name that is not one ('Door Open', '프레스 1', 'Line/3').

    ASCII letters and digits are kept (lower-cased, other runs become '-'); a short hash of the
    original keeps names apart that would otherwise meet ('Line 1' and 'line-1'). Valid ids
    are returned unchanged.
    """
    if asset_id_problem(name) is None:
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else f"id-{digest}"


def signal_name_from(name: str) -> str:
    """A valid signal name for a browsed/received name that breaks the rule (the original stays
    the display name): characters outside the rule become '_', '..' becomes '_'."""
    if signal_name_problem(name) is None:
        return name
    chars = [c if c in NAME_PUNCTUATION or unicodedata.category(c)[0] in "LNM" else "_" for c in name]
    out = "".join(chars).replace("..", "_").strip()
    while out and unicodedata.category(out[0])[0] not in "LN":
        out = out[1:]
    out = out[:MAX_NAME_CHARS]
    return (
        out
        if out and signal_name_problem(out) is None
        else "signal_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    )


def time_problem_us(ts_us: int) -> Problem | None:
    if MIN_TS_US <= ts_us < MAX_TS_US:
        return None
    return _time_problem(ts_us)


def _time_problem(ts_us: int | None) -> Problem:
    try:
        shown = datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat() if ts_us is not None else "?"
    except (OverflowError, ValueError, OSError):
        shown = f"{ts_us} µs since 1970"
    return Problem(
        "time_range",
        f"time {shown} is outside 2000-01-01..2100-01-01 UTC (a unit mistake, e.g. seconds sent as ms?)",
        f"시각 {shown}이(가) 2000-01-01..2100-01-01(UTC) 범위 밖입니다 (단위 오류인지 확인하세요: 초/밀리초)",
    )


def time_problem(when: datetime) -> Problem | None:
    """None if ``when`` (time-zone aware) is in the window, else why not."""
    if when.tzinfo is None:
        return Problem(
            "time_naive",
            f"time {when.isoformat()} has no time zone; add 'Z' or '+09:00'",
            f"시각 {when.isoformat()}에 시간대가 없습니다. 'Z'나 '+09:00'을 붙이세요",
        )
    if MIN_TIME <= when < MAX_TIME:
        return None
    return Problem(
        "time_range",
        f"time {when.isoformat()} is outside 2000-01-01..2100-01-01 UTC",
        f"시각 {when.isoformat()}이(가) 2000-01-01..2100-01-01(UTC) 범위 밖입니다",
    )


def value_problem(value: float | None) -> Problem | None:
    if value is None or math.isfinite(value):
        return None
    return _NOT_FINITE


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def integer_problem(value: int) -> Problem | None:
    """None if an integer reading can be stored exactly (it fits int64), else why not."""
    if INT64_MIN <= value <= INT64_MAX:
        return None
    shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "…"
    return Problem(
        "value_int_range",
        f"integer {shown} is outside the 64-bit signed range (-2^63..2^63-1): no column keeps it "
        "exactly, and a rounded value is not stored",
        f"정수 {shown}이(가) 64비트 부호 있는 정수 범위(-2^63..2^63-1)를 벗어납니다: 정확히 저장할 수 "
        "없으므로 반올림한 값을 저장하지 않습니다",
    )


def exact_value(value: int) -> float | int:
    """An integer reading as a source hands it on: a float where float64 holds it exactly
    (|value| <= 2^53), else the int itself (stored exactly in ``value_int``). Raises
    ``ValueError`` with the reason for an integer that int64 cannot hold either."""
    if -(2**53) <= value <= 2**53:
        return float(value)
    problem = integer_problem(value)
    if problem is not None:
        raise ValueError(problem.en)
    return value


_NOT_FINITE = Problem(
    "value_not_finite",
    "value is NaN or infinite: send a finite number, or null for a missing value",
    "값이 NaN이나 무한대입니다: 유한한 숫자나, 값이 없으면 null을 보내세요",
)
_BAD_QUALITY = Problem(
    "quality",
    "quality must be 0 (good), 1 (uncertain) or 2 (bad)",
    "품질은 0(정상), 1(불확실), 2(불량) 중 하나여야 합니다",
)


def reading_problem(
    asset: str, signal: str, ts_us: int, value: float | None, quality: int = 0
) -> Problem | None:
    """The first problem of one reading, or None (the scalar form of ``check_batch``)."""
    return (
        asset_id_problem(asset)
        or signal_name_problem(signal)
        or time_problem_us(ts_us)
        or value_problem(value)
        or (None if quality in (0, 1, 2) else _BAD_QUALITY)
    )


def _names_bad(
    column: pa.ChunkedArray | pa.Array, check: Callable[[object], Problem | None]
) -> tuple[np.ndarray, dict[int, Problem]]:
    """Per-row mask and problems for a name column, checking each distinct name once."""
    strings = pc.fill_null(pc.cast(column, pa.string()), "")
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    encoded = pc.dictionary_encode(strings)
    problems = [check(u) for u in encoded.dictionary.to_pylist()]
    if not any(problems):
        return np.zeros(len(strings), dtype=bool), {}
    bad_codes = np.array([p is not None for p in problems], dtype=bool)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    mask = bad_codes[codes]
    per_row: dict[int, Problem] = {}
    for i in np.flatnonzero(mask):
        problem = problems[int(codes[i])]
        assert problem is not None
        per_row[int(i)] = problem
    return mask, per_row


def _iso_or_us(ts_us: int | None) -> str | int | None:
    if ts_us is None:
        return None
    try:
        return datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return ts_us


@dataclass(frozen=True)
class RowProblem:
    """One reading of a batch that breaks the rule: its position, the reading, and why."""

    index: int
    reading: dict[str, object]
    problem: Problem


def check_batch(batch: pa.Table) -> tuple[pa.Table, list[RowProblem]]:
    """Split a readings batch into the rows fit to store and the rows that break the rule.

    Vectorised: names are checked once per distinct name, times, values and qualities with
    Arrow compute, so the check costs little beside a store write.
    """
    n = batch.num_rows
    if n == 0:
        return batch, []
    bad = np.zeros(n, dtype=bool)
    why: dict[int, Problem] = {}

    def note(mask: np.ndarray, problem: Problem | dict[int, Problem]) -> None:
        nonlocal bad
        new = mask & ~bad
        if not new.any():
            return
        for i in np.flatnonzero(new):
            why[int(i)] = problem[int(i)] if isinstance(problem, dict) else problem
        bad |= new

    note(*_names_bad(batch["asset"], asset_id_problem))
    note(*_names_bad(batch["signal"], signal_name_problem))
    ts = batch["ts"].cast(pa.int64())
    ts_np = np.asarray(ts.fill_null(0).to_numpy(), dtype=np.int64)
    ts_bad = (ts_np < MIN_TS_US) | (ts_np >= MAX_TS_US) | np.asarray(ts.is_null().to_numpy(), dtype=bool)
    if ts_bad.any():
        note(ts_bad, {int(i): _time_problem(int(ts_np[i])) for i in np.flatnonzero(ts_bad & ~bad)})
    values = batch["value"].cast(pa.float64())
    not_finite = pc.fill_null(pc.invert(pc.is_finite(values)), False)
    note(np.asarray(not_finite.to_numpy(zero_copy_only=False), dtype=bool), _NOT_FINITE)
    quality = pc.fill_null(pc.greater(batch["quality"].cast(pa.int64()), 2), True)
    note(np.asarray(quality.to_numpy(zero_copy_only=False), dtype=bool), _BAD_QUALITY)
    if not bad.any():
        return batch, []
    idx = np.flatnonzero(bad)
    picked = batch.take(pa.array(idx))
    # Built by hand: an out-of-range time cannot become a Python datetime (to_pylist would raise).
    rows = [
        {"asset": a, "signal": s, "ts": _iso_or_us(t), "value": v, "quality": q}
        for a, s, t, v, q in zip(
            picked["asset"].cast(pa.string()).to_pylist(),
            picked["signal"].cast(pa.string()).to_pylist(),
            picked["ts"].cast(pa.int64()).to_pylist(),
            picked["value"].cast(pa.float64()).to_pylist(),
            picked["quality"].cast(pa.int64()).to_pylist(),
            strict=True,
        )
    ]
    problems = [RowProblem(int(i), r, why[int(i)]) for i, r in zip(idx.tolist(), rows, strict=True)]
    return batch.filter(pa.array(~bad)), problems
