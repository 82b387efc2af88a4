"""Readings of one asset from the time-series store: query a window, or push a small batch."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from axhub.api.deps import IngestScope, ReadScope, State
from axhub.api.errors import ERROR_RESPONSES, ApiError
from axhub.api.schemas.plant import ReadingsIn, ReadingsOut, SeriesOut, WriteOut
from axhub.core.timeutil import as_utc, utcnow
from axhub.store.models import AssetRow, SignalRow

router = APIRouter(prefix="/assets/{asset_id}/readings", tags=["readings"], responses=ERROR_RESPONSES)

# Rolling "last hour" queries (no explicit start/end) are what dashboards poll, often many
# screens at once: their JSON is kept for LIVE_CACHE_S, keyed by the caller's organisation, so
# one DuckDB query serves every poll in that second. Explicit windows are never cached.
LIVE_CACHE_S = 1.0
_live_cache: dict[tuple[Any, ...], tuple[float, bytes]] = {}

_INTERVAL = r"^[0-9]{1,6}(ms|s|min|m|h|D|d)$"


def _store(state: State) -> Any:
    try:
        from axhub.store.timeseries import TimeSeriesStore
    except ImportError as exc:
        raise ApiError(503, "unavailable", "the time-series store is not installed on this hub") from exc
    cached = getattr(state, "_timeseries", None)
    if cached is None:
        cached = TimeSeriesStore(state.settings.timeseries_root)
        state._timeseries = cached  # type: ignore[attr-defined]
    return cached


def _to_series(result: Any, signals: list[str], units: dict[str, str]) -> list[SeriesOut]:
    """Accept the store's frame in wide (time + one column per signal) or long form."""
    frame = result.to_pandas() if hasattr(result, "schema") and hasattr(result, "to_pandas") else result
    if frame is None or len(frame) == 0:
        return [SeriesOut(signal=s, unit=units.get(s, ""), times=[], values=[]) for s in signals]
    time_col = next((c for c in ("time", "ts", "bucket") if c in frame.columns), frame.columns[0])
    out = []
    if {"signal", "value"} <= set(frame.columns):
        for name in signals:
            part = frame[frame["signal"] == name]
            out.append(_series(name, units, part[time_col], part["value"]))
    else:
        for name in signals:
            values = frame[name] if name in frame.columns else [None] * len(frame)
            out.append(_series(name, units, frame[time_col], values))
    return out


def _series(name: str, units: dict[str, str], times: Any, values: Any) -> SeriesOut:
    import math

    clean = [
        None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v) for v in values
    ]
    return SeriesOut(signal=name, unit=units.get(name, ""), times=list(times), values=clean)


@router.get("", operation_id="query_readings", response_model=ReadingsOut)
def query_readings(
    asset_id: str,
    scope: ReadScope,
    state: State,
    signals: Annotated[
        list[str] | None, Query(max_length=100, description="Signal names; all if omitted")
    ] = None,
    start: Annotated[datetime | None, Query(description="Default: one hour before end")] = None,
    end: Annotated[datetime | None, Query(description="Default: now")] = None,
    interval: Annotated[str | None, Query(pattern=_INTERVAL, description="Bucket, e.g. 10s, 1m")] = None,
    agg: Annotated[str, Query(pattern=r"^(mean|min|max|last)$")] = "mean",
) -> ReadingsOut:
    """An asset's readings in a time window (default: the last hour, refreshed every second),
    optionally bucketed."""
    live_key = None
    if start is None and end is None:
        live_key = (scope.org_id, asset_id, tuple(signals or ()), interval, agg)
        hit = _live_cache.get(live_key)
        if hit is not None and time.monotonic() - hit[0] < LIVE_CACHE_S:
            return Response(hit[1], media_type="application/json")  # type: ignore[return-value]
    asset = scope.get(AssetRow, asset_id)
    known = {s.name: s.unit for s in scope.list(SignalRow, asset_id=asset.id)}
    names = signals or sorted(known)
    end_t = as_utc(end) if end else utcnow()
    start_t = as_utc(start) if start else end_t - timedelta(hours=1)
    if start_t >= end_t:
        raise ApiError(422, "validation_error", "start must be before end")
    if not names:
        return ReadingsOut(asset_id=asset.id, start=start_t, end=end_t, interval=interval, agg=agg, series=[])
    result = _store(state).query(scope.org_id, asset.slug, names, start_t, end_t, interval, agg)
    out = ReadingsOut(
        asset_id=asset.id,
        start=start_t,
        end=end_t,
        interval=interval,
        agg=agg,
        series=_to_series(result, names, known),
    )
    if live_key is None:
        return out
    body = out.model_dump_json().encode()
    if len(_live_cache) > 10_000:
        _live_cache.clear()
    _live_cache[live_key] = (time.monotonic(), body)
    return Response(body, media_type="application/json")  # type: ignore[return-value]


@router.post("", operation_id="write_readings", response_model=WriteOut, status_code=201)
def write_readings(asset_id: str, body: ReadingsIn, scope: IngestScope, state: State) -> WriteOut:
    """Push a batch of readings (gateways with an ingest-only key); new signals are registered."""
    from axhub.core.readings import make_batch

    asset = scope.get(AssetRow, asset_id)
    rows = body.readings
    batch = make_batch(
        asset.slug,
        [r.signal for r in rows],
        [int(as_utc(r.time).timestamp() * 1_000_000) for r in rows],
        [r.value for r in rows],
        [r.quality for r in rows],
    )
    result = _store(state).write(scope.org_id, batch)
    scope.register_signals(sorted({(asset.slug, r.signal, "") for r in rows}))
    written = getattr(result, "written", None)
    return WriteOut(written=int(written if written is not None else len(rows)))
