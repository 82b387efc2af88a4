"""JSON payloads as sent by gateways and PLC bridges, turned into reading batches.

Recognised shapes (times numeric in the rule's ``ts_unit``, or ISO-8601 with a zone):

- a bare number: one reading, asset and signal from the topic;
- one reading: ``{"ts": 1700000000000, "value": 1.5, "quality": "good"}`` (``asset`` and
  ``signal`` fields override the topic); Node-RED sends the time as ``timestamp``;
- one record of several signals: ``{"ts": ..., "values": {"temp": 20.1, "rpm": 1500}}``
  (also ThingsBoard device telemetry);
- ThingsBoard key-values without a time: ``{"temp": 20.1, "rpm": 1500}``;
- columns: ``{"ts": [t0, t1, ...], "values": {"temp": [..], "rpm": [..]}}``;
- ThingsBoard gateway telemetry: ``{"Device A": [{"ts": ..., "values": {...}}], ...}`` (the
  device name is the asset: map it with the rule's ``assets`` or let ``make_ids`` make an id);
- Kepware IoT Gateway: ``{"timestamp": ..., "values": [{"id": "Ch1.Dev1.Tag1", "v": 1, "q": true,
  "t": ...}]}`` (``id`` is the signal, ``t`` its time, ``q`` its quality);
- a JSON array of any of these (batching many readings per message is what makes 100k
  readings/s possible).

Nothing a publisher sends raises out of ``parse``: whatever cannot become readings comes back
as a reason (for the dead letters) and the rest of the message is kept. Times are refused
rather than guessed: NaN, infinite or out-of-range numbers, ISO strings without a zone, and a
time under a key the rule does not read (it never silently becomes the arrival time).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from axhub.core.domain import Quality
from axhub.core.reading_rules import asset_id_from_name, asset_id_problem, exact_value
from axhub.core.readings import (
    FLOAT_EXACT_INT,
    READINGS_SCHEMA,
    TIMESTAMP_TYPE,
    concat_readings,
    split_exact,
    with_exact_ints,
)
from axhub.ingest.tag_mapping import MqttTopicRule, fill

_UNIT_TO_US = {"s": 1_000_000.0, "ms": 1_000.0, "us": 1.0, "ns": 0.001}
_QUALITY_NAMES = {q.name.lower(): int(q) for q in Quality}
# Beyond this many µs from 1970 a time cannot be an int64 µs timestamp at all (year ±292,000).
_MAX_ABS_US = 9.2e18
# Keys that hold a time in some gateway's JSON; one the rule does not read is refused.
_TIME_KEYS = ("ts", "timestamp", "time", "Timestamp", "TimeStamp", "datetime", "date", "@timestamp", "t")
_DEFAULT_TS_KEYS = ("ts", "timestamp")


def _plain_number(x: Any) -> bool:
    """A finite float, or an int a float holds exactly (bool is not a number here)."""
    if type(x) is float:
        return math.isfinite(x)
    return type(x) is int and -(2**53) <= x <= 2**53


_GOOD = int(Quality.GOOD)


class PayloadError(ValueError):
    """A payload (or one row of it) that cannot become readings."""


def _short(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _finite(value: int | float, what: str) -> float:
    """``value`` as a finite float (huge integers, NaN and infinity refused)."""
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"{what} {str(value)[:20]}… is too large for a float64") from None
    if not math.isfinite(number):
        raise PayloadError(f"{what} is {number} (NaN and infinity are refused)")
    return number


def _quality_code(code: int, codes: str) -> int:
    """A numeric quality: AX Hub 0/1/2, OPC Classic (DA) quality byte, or OPC UA status code."""
    if codes == "axhub" or (codes == "auto" and code in (0, 1, 2)):
        if code in (0, 1, 2):
            return code
        raise PayloadError(f"quality must be 0 (good), 1 (uncertain) or 2 (bad), got {code}")
    if codes == "opc-da" or (codes == "auto" and 0 <= code <= 255):
        if not 0 <= code <= 255:
            raise PayloadError(f"an OPC Classic quality is 0-255, got {code}")
        bits = code & 0xC0  # 11xxxxxx good (192), 01xxxxxx uncertain (64), 00xxxxxx bad
        return int(Quality.GOOD if bits == 0xC0 else Quality.UNCERTAIN if bits == 0x40 else Quality.BAD)
    if 0 <= code <= 0xFFFFFFFF:  # OPC UA status code: the top two bits are the severity
        severity = code >> 30
        return int(Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD)
    raise PayloadError(f"quality {str(code)[:20]} is not a quality code")


class _Columns:
    def __init__(self) -> None:
        self.asset: list[str] = []
        self.signal: list[str] = []
        self.ts: list[int] = []
        # A Python int here is an exact integer beyond +-2^53 (``reading_rules.exact_value``).
        self.value: list[float | int | None] = []
        self.quality: list[int] = []

    def add(self, asset: str, signal: str, ts: int, value: float | int | None, quality: int) -> None:
        self.asset.append(asset)
        self.signal.append(signal)
        self.ts.append(ts)
        self.value.append(value)
        self.quality.append(quality)

    def __len__(self) -> int:
        return len(self.ts)

    def truncate(self, n: int) -> None:
        """Drop rows from ``n`` on (a payload that failed half-way leaves nothing behind)."""
        for col in (self.asset, self.signal, self.ts, self.value, self.quality):
            del col[n:]

    def extend(self, other: _Columns) -> None:
        self.asset += other.asset
        self.signal += other.signal
        self.ts += other.ts
        self.value += other.value
        self.quality += other.quality

    def table(self) -> pa.Table:
        floats, exact = split_exact(self.value)
        batch = pa.table(
            {
                "asset": pa.array(self.asset, pa.string()),
                "signal": pa.array(self.signal, pa.string()),
                "ts": pa.array(np.asarray(self.ts, dtype=np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
                "value": pa.array(floats, pa.float64()),
                "quality": pa.array(np.asarray(self.quality, dtype=np.uint8), pa.uint8()),
            },
            schema=READINGS_SCHEMA,
        )
        return with_exact_ints(batch, exact)


# gc=False: rows hold only numbers and strings (no cycles), and a 1,000-reading message would
# otherwise hand the garbage collector 1,000 new tracked objects (collections mid-parse).
class _FlatRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One reading of a batched array, as the vectorised path reads it (see ``_fast_array``)."""

    ts: int | float
    value: int | float
    asset: str | msgspec.UnsetType = msgspec.UNSET
    signal: str | msgspec.UnsetType = msgspec.UNSET


class _OneReading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    ts: int | float
    value: int | float


_FLAT_ROWS = msgspec.json.Decoder(list[_FlatRow])
_ONE_READING = msgspec.json.Decoder(_OneReading)
_ROW_TS = operator.attrgetter("ts")
_ROW_VALUE = operator.attrgetter("value")
_ROW_ASSET = operator.attrgetter("asset")
_ROW_SIGNAL = operator.attrgetter("signal")


Names = tuple[list[str], np.ndarray]  # the distinct names, and each row's index into them


def _names_codes(names: list[Any], default: str | None, rename: dict[str, str] | None) -> Names | None:
    """Per-row names (UNSET: ``default``, from the topic) as the few distinct names a message
    holds and a code per row; None if a row ends up with no name."""
    distinct = list(set(names))
    if msgspec.UNSET in distinct:
        if default is None:
            return None
        names = [default if v is msgspec.UNSET else v for v in names]
        distinct = list(set(names))
    if not all(distinct):  # an empty name: the general path says why
        return None
    shown = [rename.get(d, d) for d in distinct] if rename else distinct
    if len(distinct) == 1:
        return shown, np.zeros(len(names), dtype=np.int32)
    index = {name: i for i, name in enumerate(distinct)}
    return shown, np.fromiter(map(index.__getitem__, names), dtype=np.int32, count=len(names))


class _NameCodes:
    """The names one field of a parser's messages held so far, each with a fixed code: a
    message whose names are all known gets its codes in one pass (no set, no index per
    message), and its chunks share one list of names (``_merged_names`` maps it once)."""

    LIMIT = 4096  # names kept at most; past it, start again (codes already given stay valid)

    def __init__(self, rename: dict[str, str] | None) -> None:
        self.rename = rename
        self.codes: dict[str, int] = {}
        self.shown: list[str] = []  # only appended to: earlier chunks' codes stay valid

    def known(self, names: Any, n: int) -> Names | None:
        """Codes of ``n`` names, or None if one is new (or UNSET: the caller's slow path)."""
        try:
            return self.shown, np.fromiter(map(self.codes.__getitem__, names), np.int32, n)
        except KeyError:
            return None

    def learn(self, names: set[Any]) -> None:
        """Remember names the slow path accepted (non-empty strings)."""
        if len(self.codes) + len(names) > self.LIMIT:
            self.codes, self.shown = {}, []
        for name in names:
            if isinstance(name, str) and name and name not in self.codes:
                self.codes[name] = len(self.shown)
                self.shown.append(self.rename.get(name, name) if self.rename else name)


def _field_codes(
    rows: list[_FlatRow],
    field: operator.attrgetter[Any],
    default: str | None,
    cache: _NameCodes,
    absent: bool,
) -> Names | None:
    """Codes of one name field of a decoded array (see ``_names_codes``); ``absent``: the
    payload cannot hold the key, so every row takes the default (from the topic)."""
    n = len(rows)
    if absent:
        if not default:
            return None
        shown = cache.rename.get(default, default) if cache.rename else default
        return [shown], np.zeros(n, dtype=np.int32)
    found = cache.known(map(field, rows), n)
    if found is not None:
        return found
    names = list(map(field, rows))
    result = _names_codes(names, default, cache.rename)
    if result is not None:
        cache.learn(set(names))
    return result


@dataclass
class _Chunk:
    """Readings of one vectorised message, kept as numpy columns: the Arrow table is built once
    for all the messages of a batch (``_chunks_table``), not once per message."""

    assets: Names
    signals: Names
    ts_us: np.ndarray
    values: np.ndarray


def _merged_names(parts: list[Names]) -> pa.Array:
    index: dict[str, int] = {}
    codes = []
    # Chunks often share one list of names (``_NameCodes``): map each list once. The lists
    # are alive (in ``parts``) for the whole call, so their ids are not reused meanwhile.
    remaps: dict[int, np.ndarray] = {}
    for distinct, rows in parts:
        remap = remaps.get(id(distinct))
        if remap is None:
            remap = remaps[id(distinct)] = np.fromiter(
                (index.setdefault(d, len(index)) for d in distinct), np.int32, len(distinct)
            )
        codes.append(remap[rows])
    return pa.array(list(index), pa.string()).take(pa.array(np.concatenate(codes)))


def _chunks_table(chunks: list[_Chunk]) -> pa.Table:
    ts = np.concatenate([c.ts_us for c in chunks])
    return pa.table(
        {
            "asset": _merged_names([c.assets for c in chunks]),
            "signal": _merged_names([c.signals for c in chunks]),
            "ts": pa.array(ts, pa.int64()).cast(TIMESTAMP_TYPE),
            "value": pa.array(np.concatenate([c.values for c in chunks]), pa.float64()),
            "quality": pa.array(np.zeros(len(ts), dtype=np.uint8), pa.uint8()),
        },
        schema=READINGS_SCHEMA,
    )


class JsonPayloadParser:
    """Parses the payloads of one topic rule."""

    def __init__(self, rule: MqttTopicRule) -> None:
        self.rule = rule
        self.unit_us = _UNIT_TO_US[rule.ts_unit]
        self.ts_keys = (rule.ts_key,) if rule.ts_key else _DEFAULT_TS_KEYS
        self.other_time_keys = tuple(k for k in _TIME_KEYS if k not in self.ts_keys)
        # Asset ids made from names (make_ids), id -> the name as sent: the display name.
        self.display_names: dict[str, str] = {}
        # (asset, signal) named by each topic, for the one-reading fast path in parse_into.
        self._topic_names: dict[tuple[tuple[str, str], ...], tuple[str, str] | None] = {}
        # Names seen in batched arrays, for the vectorised path (``_fast_array``).
        self._asset_codes = _NameCodes(None)
        self._signal_codes = _NameCodes(rule.rename or None)

    def _names_from_topic(self, topic_values: dict[str, str]) -> tuple[str, str] | None:
        """(asset, signal) that the general path gives a one-reading payload on this topic.

        Learned once per topic by running ``_one`` on a probe reading, so the fast path in
        ``parse_into`` names readings exactly as the general path does (None: no fast path).
        """
        key = tuple(topic_values.items())
        if key in self._topic_names:
            return self._topic_names[key]
        # The probe also checks that the general path reads "ts" and "value" the way the fast
        # path does (unit, scale, offset); a rule that reads them differently gets no fast path.
        probe = _Columns()
        ts, value = 1_700_000_000, 1.25
        try:
            self._one({"ts": ts, "value": value}, topic_values, 0, probe)
            same = len(probe) == 1 and probe.ts[0] == round(ts * self.unit_us)
            same = same and probe.value[0] == value * self.rule.scale + self.rule.offset
            found = (probe.asset[0], probe.signal[0]) if same else None
        except Exception:
            found = None
        if len(self._topic_names) > 100_000:
            self._topic_names.clear()
        self._topic_names[key] = found
        return found

    # -- single values ------------------------------------------------------------------
    def _ts_us(self, value: Any, received_us: int) -> int:
        if value is None:
            return received_us
        if isinstance(value, bool):
            raise PayloadError("ts must be a number or an ISO-8601 string, got a boolean")
        if isinstance(value, int | float):
            us = _finite(value, "ts") * self.unit_us
            if abs(us) >= _MAX_ABS_US:
                raise PayloadError(f"ts {_short(value)} is out of range (unit is '{self.rule.ts_unit}')")
            return round(us)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise PayloadError(f"ts {_short(value)} is not an ISO-8601 time") from None
            if parsed.tzinfo is None:
                raise PayloadError(f"ts {_short(value)} has no time zone; add 'Z' or '+09:00'")
            try:
                return int(parsed.timestamp() * 1_000_000)
            except (OverflowError, ValueError, OSError):
                raise PayloadError(f"ts {_short(value)} is out of range") from None
        raise PayloadError(f"ts must be a number or an ISO-8601 string, got {type(value).__name__}")

    def _record_ts(self, obj: Mapping[str, Any], received_us: int) -> tuple[Any, int | None]:
        """The raw time field of an object and its µs (None when the object has none)."""
        for key in self.ts_keys:
            if key in obj:
                return obj[key], None
        for key in self.other_time_keys:
            if key in obj:
                raise PayloadError(
                    f"the payload has a time in '{key}', which this rule does not read; set "
                    f"ts_key: {key} in the topic rule (it is not replaced by the arrival time)"
                )
        return None, received_us

    def _value(self, value: Any) -> float | int | None:
        """The reading's value: a float, or an int for an integer beyond +-2^53 sent unscaled
        (kept exact in ``value_int``); an integer int64 cannot hold is refused, not rounded."""
        if value is None:
            return None
        if isinstance(value, bool):
            number = float(value)
        elif isinstance(value, int | float):
            if type(value) is int and self._unscaled:
                return self._exact(value)
            try:
                number = float(value)
            except OverflowError:
                raise PayloadError(f"value {str(value)[:20]}… is too large for a float64") from None
        elif isinstance(value, str) and self.rule.numbers_as_strings:
            text = value.strip()
            if self._unscaled and text.lstrip("+-").isdigit() and text.isascii():
                return self._exact(int(text))  # "9007199254740993" stays that integer
            try:
                number = float(text)
            except ValueError:
                raise PayloadError(f"value {_short(value)} is not a number") from None
        elif isinstance(value, str):
            raise PayloadError(
                f"value {_short(value)} is text; if the gateway sends numbers as text, "
                "set numbers_as_strings: true in the topic rule"
            )
        else:
            raise PayloadError(f"value must be a number, true/false or null, got {_short(value)}")
        # NaN and infinity pass through: the reading rule refuses them with its own reason.
        return number * self.rule.scale + self.rule.offset

    @property
    def _unscaled(self) -> bool:
        return self.rule.scale == 1.0 and self.rule.offset == 0.0

    @staticmethod
    def _exact(value: int) -> float | int:
        try:
            return exact_value(value)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None

    def _quality(self, value: Any) -> int:
        if value is None:
            return int(Quality.GOOD)
        if isinstance(value, bool):  # Kepware's "q": true/false
            return int(Quality.GOOD if value else Quality.BAD)
        if isinstance(value, str) and value.lower() in _QUALITY_NAMES:
            return _QUALITY_NAMES[value.lower()]
        if isinstance(value, int):
            return _quality_code(value, self.rule.quality_codes)
        raise PayloadError(f"quality must be good/uncertain/bad or a quality code, got {_short(value)}")

    # -- names --------------------------------------------------------------------------
    def asset_id(self, name: Any) -> Any:
        """The asset id for a name as sent (the rule's ``assets`` map, then ``make_ids``)."""
        if not isinstance(name, str):
            return name
        mapped = self.rule.assets.get(name)
        if mapped is not None:
            return mapped
        if self.rule.make_ids and asset_id_problem(name) is not None:
            made = asset_id_from_name(name)
            self.display_names[made] = name
            return made
        return name

    def _names(self, obj: Mapping[str, Any], topic_values: dict[str, str]) -> tuple[Any, Any]:
        asset = obj.get("asset")
        signal = obj.get("signal")
        if asset is None:
            asset = fill(self.rule.asset, topic_values)
        if signal is None:
            signal = fill(self.rule.signal, topic_values)
        return self.asset_id(asset), signal

    def _signal_name(self, name: str) -> str:
        return self.rule.rename.get(name, name)

    # -- shapes -------------------------------------------------------------------------
    def _one(self, obj: Any, topic_values: dict[str, str], received_us: int, out: _Columns) -> None:
        """Append the readings of one object of any recognised shape (raises PayloadError)."""
        if isinstance(obj, bool) or not isinstance(obj, int | float | dict):
            raise PayloadError(f"expected a number or an object, got {type(obj).__name__}")
        if not isinstance(obj, dict):
            obj = {"value": obj}
        asset, signal = self._names(obj, topic_values)
        if self._is_gateway(obj):
            self._gateway(obj, topic_values, received_us, out)
            return
        if not isinstance(asset, str) or not asset:
            raise PayloadError("no asset: put it in the topic or an 'asset' field")
        values = obj.get("values")
        if isinstance(values, list):
            self._kepware(obj, asset, values, received_us, out)
            return
        if "values" in obj:
            self._record(obj, asset, received_us, out)
            return
        if "value" not in obj:
            if "signal" not in obj and obj:
                self._key_values(obj, asset, received_us, out)
                return
            raise PayloadError("a reading needs a 'value' (or 'values' for several signals)")
        if not isinstance(signal, str) or not signal:
            raise PayloadError("no signal: put it in the topic or a 'signal' field")
        raw_ts, ts = self._record_ts(obj, received_us)
        out.add(
            asset,
            self._signal_name(signal),
            ts if ts is not None else self._ts_us(raw_ts, received_us),
            self._value(obj["value"]),
            self._quality(obj.get("quality")),
        )

    def _record(self, obj: dict[str, Any], asset: str, received_us: int, out: _Columns) -> None:
        values = obj["values"]
        if not isinstance(values, dict) or not values:
            raise PayloadError("'values' must be an object of signal -> value(s)")
        raw_ts, ts = self._record_ts(obj, received_us)
        quality = self._quality(obj.get("quality"))
        if isinstance(raw_ts, list):
            stamps = [self._ts_us(t, received_us) for t in raw_ts]
            for name, series in values.items():
                if not isinstance(series, list) or len(series) != len(stamps):
                    raise PayloadError(
                        f"column {_short(name)} must be a list as long as the times ({len(stamps)})"
                    )
                sig = self._signal_name(str(name))
                for t, v in zip(stamps, series, strict=True):
                    out.add(asset, sig, t, self._value(v), quality)
            return
        at = ts if ts is not None else self._ts_us(raw_ts, received_us)
        for name, v in values.items():
            out.add(asset, self._signal_name(str(name)), at, self._value(v), quality)

    def _key_values(self, obj: dict[str, Any], asset: str, received_us: int, out: _Columns) -> None:
        """ThingsBoard's plain telemetry: every key but the time is a signal."""
        raw_ts, ts = self._record_ts(obj, received_us)
        at = ts if ts is not None else self._ts_us(raw_ts, received_us)
        skip = {*self.ts_keys, "asset", "quality"}
        quality = self._quality(obj.get("quality"))
        names = [name for name in obj if name not in skip]
        if not names:
            raise PayloadError("no readings: the object holds no signal -> value pairs")
        for name in names:
            out.add(asset, self._signal_name(str(name)), at, self._value(obj[name]), quality)

    def _kepware(
        self, obj: dict[str, Any], asset: str, values: list[Any], received_us: int, out: _Columns
    ) -> None:
        """Kepware IoT Gateway: each item's own time ``t`` (else the message's), id, v, q."""
        raw_ts, ts = self._record_ts(obj, received_us)
        message_ts = ts if ts is not None else self._ts_us(raw_ts, received_us)
        for item in values:
            if not isinstance(item, dict) or "id" not in item or "v" not in item:
                raise PayloadError("each item of a 'values' list needs 'id' and 'v' (Kepware IoT Gateway)")
            at = self._ts_us(item["t"], received_us) if "t" in item else message_ts
            out.add(
                asset,
                self._signal_name(str(item["id"])),
                at,
                self._value(item["v"]),
                self._quality(item.get("q")),
            )

    @staticmethod
    def _is_gateway(obj: dict[str, Any]) -> bool:
        """ThingsBoard gateway telemetry: every value a list of {ts, values} objects."""
        return bool(obj) and all(
            isinstance(v, list) and v and all(isinstance(r, dict) and "values" in r for r in v)
            for v in obj.values()
        )

    def _gateway(
        self, obj: dict[str, Any], topic_values: dict[str, str], received_us: int, out: _Columns
    ) -> None:
        for device, records in obj.items():
            asset = self.asset_id(device)
            for record in records:
                self._record(record, asset, received_us, out)

    def _fast_array(self, payload: bytes, topic_values: dict[str, str]) -> _Chunk | None:
        """Vectorised path for a JSON array of flat readings ``{"ts", "value"[, "asset", "signal"]}``
        with numbers (what batching gateways send); None = use the general path.

        msgspec decodes and type-checks the array in C (no dict per reading); anything else (a
        quality, a null, a bool, text, NaN, another key, an integer float64 would round) fails
        that check or the ones below and takes the general path, which reads it the same way
        or says why not.
        """
        rule = self.rule
        if self.ts_keys[0] != "ts" or rule.assets or rule.make_ids:
            return None
        try:
            rows = _FLAT_ROWS.decode(payload)
        except msgspec.DecodeError:  # also ValidationError: not this shape
            return None
        n = len(rows)
        if not n:
            return None
        a0 = fill(rule.asset, topic_values)
        s0 = fill(rule.signal, topic_values)
        try:
            ts = np.fromiter(map(_ROW_TS, rows), dtype=np.float64, count=n)
            values = np.fromiter(map(_ROW_VALUE, rows), dtype=np.float64, count=n)
        except OverflowError:  # an integer beyond float64's range
            return None
        beyond = np.flatnonzero(np.abs(values) >= FLOAT_EXACT_INT)  # 2^53 + 1 rounds to 2^53
        if any(type(rows[i].value) is int for i in beyond):
            return None  # an integer float64 would round: the general path keeps it exact
        us = ts * self.unit_us
        if not np.all(np.isfinite(us)) or np.any(np.abs(us) >= _MAX_ABS_US):
            return None
        # A key not in the bytes is in no row (with no escape anywhere: "\u0061sset" is "asset").
        plain = b"\\" not in payload
        no_asset = plain and b'"asset"' not in payload
        no_signal = plain and b'"signal"' not in payload
        assets = _field_codes(rows, _ROW_ASSET, a0, self._asset_codes, no_asset)
        signals = _field_codes(rows, _ROW_SIGNAL, s0, self._signal_codes, no_signal)
        if assets is None or signals is None:
            return None
        if rule.scale != 1.0 or rule.offset != 0.0:
            values = values * rule.scale + rule.offset
        return _Chunk(assets, signals, np.rint(us).astype(np.int64), values)

    # -- entry point --------------------------------------------------------------------
    def parse(
        self, payload: bytes, topic_values: dict[str, str], received_us: int
    ) -> tuple[pa.Table, list[str]]:
        """The readings in ``payload`` and the reasons rows were rejected. Never raises."""
        out = _Columns()
        chunk, reasons = self.parse_into(payload, topic_values, received_us, out)
        return (_chunks_table([chunk]) if chunk is not None else out.table()), reasons

    def parse_into(
        self, payload: bytes, topic_values: dict[str, str], received_us: int, out: _Columns
    ) -> tuple[_Chunk | None, list[str]]:
        """Like ``parse``, but small payloads append their rows to ``out`` (one table for many
        messages: building an Arrow table per one-reading message costs more than the rest of
        its handling). Returns numpy columns only for a payload read the vectorised way.

        Never raises: whatever cannot be read comes back as a reason, and a payload that
        failed half-way leaves nothing in ``out``.
        """
        mark = len(out)
        try:
            return self._parse_into(payload, topic_values, received_us, out)
        except Exception as exc:  # nothing a publisher sends may stop the worker
            out.truncate(mark)
            return None, [f"payload could not be read ({type(exc).__name__}: {exc})"[:300]]

    def _parse_into(
        self, payload: bytes, topic_values: dict[str, str], received_us: int, out: _Columns
    ) -> tuple[_Chunk | None, list[str]]:
        first = payload[:1]
        if first == b"[":
            fast = self._fast_array(payload, topic_values)
            if fast is not None:
                return fast, []
        elif first == b"{" and len(payload) < 200:
            # What most gateways send, {"ts": <number>, "value": <number>} with asset and signal
            # from the topic: decoded and type-checked by msgspec in C, then what _one gives it
            # (tests keep them equal) without its per-reading checks. Anything else (another
            # key, a bool, NaN, an integer float64 would round) takes the general path.
            try:
                one = _ONE_READING.decode(payload)
            except msgspec.DecodeError:
                one = None
            if one is not None and _plain_number(one.ts) and _plain_number(one.value):
                names = self._names_from_topic(topic_values)
                ts_us = round(one.ts * self.unit_us)
                if names is not None and -(2**62) < ts_us < 2**62:
                    rule = self.rule
                    out.add(names[0], names[1], ts_us, float(one.value) * rule.scale + rule.offset, _GOOD)
                    return None, []
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, [f"not valid JSON: {exc}"]
        except RecursionError:
            return None, ["not valid JSON: nested too deeply"]
        if isinstance(doc, list):
            if not doc:
                return None, []
            reasons = []
            for i, item in enumerate(doc):
                # Each item is parsed on its own, so a bad one leaves no half-added rows.
                mark = len(out)
                try:
                    self._one(item, topic_values, received_us, out)
                except (PayloadError, RecursionError) as exc:
                    out.truncate(mark)
                    reasons.append(f"item {i}: {exc}")
            return None, reasons
        mark = len(out)
        try:
            self._one(doc, topic_values, received_us, out)
        except PayloadError as exc:
            out.truncate(mark)
            return None, [str(exc)]
        return None, []


class BatchBuilder:
    """Readings of many payloads gathered into one batch, in arrival order."""

    def __init__(self) -> None:
        # In arrival order: tables, and numpy columns of vectorised messages (made into one
        # table per run of them at the end).
        self._tables: list[pa.Table | _Chunk] = []
        self._cols = _Columns()

    def add(
        self, parser: JsonPayloadParser, payload: bytes, topic_values: dict[str, str], received_us: int
    ) -> list[str]:
        """Parse one payload into the batch; returns the reasons rows were rejected."""
        mark = len(self._cols)
        try:
            table, reasons = parser.parse_into(payload, topic_values, received_us, self._cols)
        except Exception:
            self._cols.truncate(mark)  # nothing of a payload that failed stays in the batch
            raise
        if table is not None:
            if mark:
                self._tables.append(self._cols.table())
                self._cols = _Columns()
            self._tables.append(table)
        return reasons

    def add_table(self, table: pa.Table) -> None:
        """Add readings already read into a table (e.g. a Sparkplug B message), in order."""
        if not table.num_rows:
            return
        if len(self._cols):
            self._tables.append(self._cols.table())
            self._cols = _Columns()
        self._tables.append(table)

    def table(self) -> pa.Table:
        if len(self._cols):
            self._tables.append(self._cols.table())
            self._cols = _Columns()
        tables: list[pa.Table] = []
        run: list[_Chunk] = []
        for item in self._tables:
            if isinstance(item, _Chunk):
                run.append(item)
                continue
            if run:
                tables.append(_chunks_table(run))
                run = []
            tables.append(item)
        if run:
            tables.append(_chunks_table(run))
        return concat_readings(tables)
