"""JSON payloads as sent by gateways and PLC bridges, turned into reading batches.

Accepted shapes (``ts`` numeric in the rule's unit, or ISO-8601; missing = time received):

- a bare number: one reading, asset and signal from the topic;
- one reading: ``{"ts": 1700000000000, "value": 1.5, "quality": "good"}`` (``asset`` and
  ``signal`` fields override the topic);
- one record of several signals: ``{"ts": ..., "values": {"temp": 20.1, "rpm": 1500}}``;
- columns: ``{"ts": [t0, t1, ...], "values": {"temp": [..], "rpm": [..]}}``;
- a JSON array of readings or records (batching many readings per message is what makes
  100k readings/s possible).

Rows that cannot be read are returned with the reason (for the dead-letter store); the
rest of the message is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from axhub.core.domain import Quality
from axhub.core.readings import READINGS_SCHEMA, TIMESTAMP_TYPE
from axhub.ingest.tag_mapping import MqttTopicRule, fill

_UNIT_TO_US = {"s": 1_000_000.0, "ms": 1_000.0, "us": 1.0, "ns": 0.001}
_QUALITY_NAMES = {q.name.lower(): int(q) for q in Quality}


def _plain_number(x: Any) -> bool:
    """A finite float, or an int a float holds exactly (bool is not a number here)."""
    if type(x) is float:
        return math.isfinite(x)
    return type(x) is int and -(2**53) <= x <= 2**53


_GOOD = int(Quality.GOOD)


class PayloadError(ValueError):
    """A payload (or one row of it) that cannot become readings."""


def _ts_us(value: Any, unit_us: float, received_us: int) -> int:
    if value is None:
        return received_us
    if isinstance(value, bool):
        raise PayloadError("ts must be a number or an ISO-8601 string, got a boolean")
    if isinstance(value, int | float):
        return round(value * unit_us)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise PayloadError(f"ts {value!r} is not an ISO-8601 time") from exc
        if parsed.tzinfo is None:
            raise PayloadError(f"ts {value!r} has no time zone; add 'Z' or '+09:00'")
        return int(parsed.timestamp() * 1_000_000)
    raise PayloadError(f"ts must be a number or an ISO-8601 string, got {type(value).__name__}")


def _value(value: Any, scale: float, offset: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return float(value) * scale + offset
    raise PayloadError(f"value must be a number, true/false or null, got {json.dumps(value)[:40]}")


def _quality(value: Any) -> int:
    if value is None:
        return int(Quality.GOOD)
    if isinstance(value, str) and value.lower() in _QUALITY_NAMES:
        return _QUALITY_NAMES[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    raise PayloadError(f"quality must be good/uncertain/bad or 0/1/2, got {value!r}")


class _Columns:
    def __init__(self) -> None:
        self.asset: list[str] = []
        self.signal: list[str] = []
        self.ts: list[int] = []
        self.value: list[float | None] = []
        self.quality: list[int] = []

    def add(self, asset: str, signal: str, ts: int, value: float | None, quality: int) -> None:
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
        return pa.table(
            {
                "asset": pa.array(self.asset, pa.string()),
                "signal": pa.array(self.signal, pa.string()),
                "ts": pa.array(np.asarray(self.ts, dtype=np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
                "value": pa.array(self.value, pa.float64()),
                "quality": pa.array(np.asarray(self.quality, dtype=np.uint8), pa.uint8()),
            },
            schema=READINGS_SCHEMA,
        )


class JsonPayloadParser:
    """Parses the payloads of one topic rule."""

    def __init__(self, rule: MqttTopicRule) -> None:
        self.rule = rule
        self.unit_us = _UNIT_TO_US[rule.ts_unit]
        # (asset, signal) named by each topic, for the one-reading fast path in parse_into.
        self._topic_names: dict[tuple[tuple[str, str], ...], tuple[str, str] | None] = {}

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

    def _names(self, obj: Mapping[str, Any], topic_values: dict[str, str]) -> tuple[str | None, str | None]:
        asset = obj.get("asset")
        signal = obj.get("signal")
        if asset is None:
            asset = fill(self.rule.asset, topic_values)
        if signal is None:
            signal = fill(self.rule.signal, topic_values)
        return asset, signal

    def _signal_name(self, name: str) -> str:
        return self.rule.rename.get(name, name)

    def _one(self, obj: Any, topic_values: dict[str, str], received_us: int, out: _Columns) -> None:
        """Append the readings of one reading/record/columns object (raises PayloadError)."""
        scale, offset = self.rule.scale, self.rule.offset
        if isinstance(obj, bool) or not isinstance(obj, int | float | dict):
            raise PayloadError(f"expected a number or an object, got {type(obj).__name__}")
        if not isinstance(obj, dict):
            obj = {"value": obj}
        asset, signal = self._names(obj, topic_values)
        if not isinstance(asset, str) or not asset:
            raise PayloadError("no asset: put it in the topic or an 'asset' field")
        if "values" in obj:
            values = obj["values"]
            if not isinstance(values, dict) or not values:
                raise PayloadError("'values' must be an object of signal -> value(s)")
            ts_field = obj.get("ts")
            quality = _quality(obj.get("quality"))
            if isinstance(ts_field, list):
                stamps = [_ts_us(t, self.unit_us, received_us) for t in ts_field]
                for name, series in values.items():
                    if not isinstance(series, list) or len(series) != len(stamps):
                        raise PayloadError(f"column {name!r} must be a list as long as 'ts' ({len(stamps)})")
                    sig = self._signal_name(str(name))
                    for t, v in zip(stamps, series, strict=True):
                        out.add(asset, sig, t, _value(v, scale, offset), quality)
                return
            ts = _ts_us(ts_field, self.unit_us, received_us)
            for name, v in values.items():
                out.add(asset, self._signal_name(str(name)), ts, _value(v, scale, offset), quality)
            return
        if not isinstance(signal, str) or not signal:
            raise PayloadError("no signal: put it in the topic or a 'signal' field")
        if "value" not in obj:
            raise PayloadError("a reading needs a 'value' (or 'values' for several signals)")
        out.add(
            asset,
            self._signal_name(signal),
            _ts_us(obj.get("ts"), self.unit_us, received_us),
            _value(obj["value"], scale, offset),
            _quality(obj.get("quality")),
        )

    def _fast_array(self, rows: list[Any], topic_values: dict[str, str]) -> pa.Table | None:
        """Vectorised path for arrays of flat readings with numeric ts; None = use the slow path."""
        try:
            a0 = fill(self.rule.asset, topic_values)
            s0 = fill(self.rule.signal, topic_values)
            assets = [r.get("asset", a0) for r in rows]
            signals = [r.get("signal", s0) for r in rows]
            ts = np.array([r["ts"] for r in rows], dtype=np.float64)
            values = np.array([r["value"] for r in rows], dtype=np.float64)
            if any("quality" in r or "values" in r for r in rows):
                return None
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if None in assets or None in signals or not np.all(np.isfinite(ts)):
            return None
        if any(not isinstance(a, str) or not a for a in set(assets)) or any(
            not isinstance(s, str) or not s for s in set(signals)
        ):
            return None
        if self.rule.rename:
            signals = [self._signal_name(s) for s in signals]
        if self.rule.scale != 1.0 or self.rule.offset != 0.0:
            values = values * self.rule.scale + self.rule.offset
        n = len(rows)
        return pa.table(
            {
                "asset": pa.array(assets, pa.string()),
                "signal": pa.array(signals, pa.string()),
                "ts": pa.array(np.rint(ts * self.unit_us).astype(np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
                "value": pa.array(values, pa.float64(), from_pandas=True),
                "quality": pa.array(np.zeros(n, dtype=np.uint8), pa.uint8()),
            },
            schema=READINGS_SCHEMA,
        )

    def parse(
        self, payload: bytes, topic_values: dict[str, str], received_us: int
    ) -> tuple[pa.Table, list[str]]:
        """The readings in ``payload`` and the reasons rows were rejected."""
        out = _Columns()
        table, reasons = self.parse_into(payload, topic_values, received_us, out)
        return (table if table is not None else out.table()), reasons

    def parse_into(
        self, payload: bytes, topic_values: dict[str, str], received_us: int, out: _Columns
    ) -> tuple[pa.Table | None, list[str]]:
        """Like ``parse``, but small payloads append their rows to ``out`` (one table for many
        messages: building an Arrow table per one-reading message costs more than the rest of
        its handling). Returns a table only for a payload read the vectorised way."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, [f"not valid JSON: {exc}"]
        if type(doc) is dict and len(doc) == 2:
            # Fast path for what most gateways send, {"ts": <number>, "value": <number>} with
            # asset and signal from the topic: what _one gives it (tests keep them equal),
            # without its per-reading checks. Anything unusual takes the general path.
            ts: Any = doc.get("ts")
            value: Any = doc.get("value")
            if _plain_number(ts) and _plain_number(value):
                names = self._names_from_topic(topic_values)
                ts_us = round(ts * self.unit_us)
                if names is not None and -(2**62) < ts_us < 2**62:
                    rule = self.rule
                    out.add(names[0], names[1], ts_us, float(value) * rule.scale + rule.offset, _GOOD)
                    return None, []
        if isinstance(doc, list):
            if not doc:
                return None, []
            fast = self._fast_array(doc, topic_values)
            if fast is not None:
                return fast, []
            reasons = []
            for i, item in enumerate(doc):
                # Each item is parsed on its own, so a bad one leaves no half-added rows.
                mark = len(out)
                try:
                    self._one(item, topic_values, received_us, out)
                except PayloadError as exc:
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
        self._tables: list[pa.Table] = []
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

    def table(self) -> pa.Table:
        if len(self._cols):
            self._tables.append(self._cols.table())
            self._cols = _Columns()
        if not self._tables:
            return READINGS_SCHEMA.empty_table()
        return self._tables[0] if len(self._tables) == 1 else pa.concat_tables(self._tables)
