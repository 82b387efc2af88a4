"""Readings of one asset from the time-series store: query a window, or push a small batch."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from axhub.api.deps import AppState, IngestScope, Reader, State, app_state, timeseries_store
from axhub.api.errors import ERROR_RESPONSES, ApiError
from axhub.api.schemas.plant import ReadingsIn, ReadingsOut, SeriesOut, WriteOut
from axhub.core.timeutil import as_utc, utcnow
from axhub.store.models import AssetRow, SignalRow
from axhub.store.scoped import OrgScope

router = APIRouter(prefix="/assets/{asset_id}/readings", tags=["readings"], responses=ERROR_RESPONSES)

# Rolling "last hour" queries (no explicit start/end) are what dashboards poll, often many
# screens at once: their JSON is kept for LIVE_CACHE_S, keyed by the caller's organisation, so
# one DuckDB query serves every poll in that second. Explicit windows are never cached.
LIVE_CACHE_S = 1.0
_live_cache: dict[tuple[Any, ...], tuple[float, bytes]] = {}

# The store keeps one fsynced partition per asset and day, so a request's cost grows with the
# number of distinct days it touches (2,000 readings on 2,000 days once took 50 s of server
# time). A gateway sends recent readings; a backfill splits by month.
MAX_DAYS_PER_WRITE = 31

_INTERVAL = r"^[0-9]{1,6}(ms|s|min|m|h|D|d)$"


def _store(state: State) -> Any:
    return timeseries_store(state)


def _to_series(result: Any, signals: list[str], units: dict[str, str]) -> list[SeriesOut]:
    """Accept the store's frame in wide (time + one column per signal) or long form."""
    import numpy as np
    import pandas as pd

    frame = result.to_pandas() if hasattr(result, "schema") and hasattr(result, "to_pandas") else result
    if frame is None or len(frame) == 0:
        return [SeriesOut(signal=s, unit=units.get(s, ""), times=[], values=[]) for s in signals]
    time_col = next((c for c in ("time", "ts", "bucket") if c in frame.columns), frame.columns[0])
    # Vectorised: one conversion of the time and value columns, then per-signal positions
    # (a boolean mask per signal over the whole frame was most of an uncached request).
    times = np.asarray(pd.DatetimeIndex(frame[time_col]).to_pydatetime(), dtype=object)
    out = []
    if {"signal", "value"} <= set(frame.columns):
        values = _with_exact_ints(_floats(frame["value"]), frame.get("value_int"))
        positions = frame.groupby("signal", sort=False, observed=True).indices
        empty = np.empty(0, dtype=np.intp)
        for name in signals:
            at = positions.get(name, empty)
            out.append(_series(name, units, times[at].tolist(), values[at].tolist()))
    else:
        for name in signals:
            col = _floats(frame[name]).tolist() if name in frame.columns else [None] * len(frame)
            out.append(_series(name, units, times.tolist(), col))
    return out


def _floats(column: Any) -> Any:
    """A float64 array with NaN for missing values."""
    import numpy as np

    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _with_exact_ints(values: Any, exact: Any) -> Any:
    """``values`` with the exact integers of ``exact`` (the store's ``value_int``: integers beyond
    +-2^53 that float64 rounds) in their rows, so they leave as JSON integers. Unchanged (still
    float64, no per-row work) when there are none, which is nearly always."""

    if exact is None:
        return values
    given = exact.notna().to_numpy()
    if not given.any():
        return values
    out = values.astype(object)
    out[given] = [int(v) for v in exact[given]]
    return out


def _series(name: str, units: dict[str, str], times: list[Any], values: list[Any]) -> SeriesOut:
    import math

    clean = [None if v is None or not math.isfinite(v) else v for v in values]
    return SeriesOut(signal=name, unit=units.get(name, ""), times=times, values=clean)


def _asset_slug(state: AppState, scope: OrgScope, asset_id: str) -> str:
    """The slug of ``asset_id`` in the caller's organisation (404 otherwise), cached briefly per
    (org, asset): slugs never change, and a deletion is seen within ``ASSET_CACHE_S``."""
    key = (scope.org_id, asset_id)
    now = time.monotonic()
    hit = state.asset_cache.get(key)
    if hit is not None and now - hit[0] < state.ASSET_CACHE_S:
        return hit[1]
    slug = scope.get(AssetRow, asset_id).slug
    if len(state.asset_cache) > 10_000:
        state.asset_cache.clear()
    state.asset_cache[key] = (now, slug)
    return slug


def _readings_json(
    state: AppState,
    org_id: str,
    asset_id: str,
    signals: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    interval: str | None,
    agg: str,
) -> bytes:
    """The blocking part of a readings query (metadata DB, DuckDB), run in a worker thread."""
    with state.db.session() as session:
        scope = OrgScope(session, org_id)
        slug = _asset_slug(state, scope, asset_id)
        known = {s.name: s.unit for s in scope.list(SignalRow, asset_id=asset_id)}
    names = signals or sorted(known)
    end_t = as_utc(end) if end else utcnow()
    start_t = as_utc(start) if start else end_t - timedelta(hours=1)
    if start_t >= end_t:
        raise ApiError(422, "validation_error", "start must be before end")
    series: list[SeriesOut] = []
    if names:
        # Raw readings with their exact integers; buckets are float64 aggregates.
        exact = interval is None
        result = _store(state).query(org_id, slug, names, start_t, end_t, interval, agg, exact=exact)
        series = _to_series(result, names, known)
    out = ReadingsOut(asset_id=asset_id, start=start_t, end=end_t, interval=interval, agg=agg, series=series)
    return out.model_dump_json().encode()


# Rolling queries being computed, per event loop: concurrent misses of one key share one query
# instead of all running it when the cache entry expires (which set the p99 under load).
_inflight: dict[tuple[Any, ...], asyncio.Future[bytes]] = {}


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("", operation_id="query_readings", response_model=ReadingsOut)
async def query_readings(
    asset_id: str,
    principal: Reader,
    request: Request,
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
    # The organisation comes from the authenticated principal only; the asset lookup and every
    # cache key are scoped by it.
    state = app_state(request)
    org_id = principal.org_id
    args = (state, org_id, asset_id, signals, start, end, interval, agg)
    if start is not None or end is not None:
        return _json(await run_in_threadpool(_readings_json, *args))  # type: ignore[return-value]
    live_key = (org_id, asset_id, tuple(signals or ()), interval, agg)
    hit = _live_cache.get(live_key)
    if hit is not None and time.monotonic() - hit[0] < LIVE_CACHE_S:
        return _json(hit[1])  # type: ignore[return-value]
    loop = asyncio.get_running_loop()
    flight_key = (id(loop), *live_key)
    task = _inflight.get(flight_key)
    if task is None:
        task = asyncio.ensure_future(run_in_threadpool(_readings_json, *args))
        _inflight[flight_key] = task
        task.add_done_callback(lambda t: _landed(flight_key, live_key, t))
    # shield: a caller that disconnects does not cancel the query the others are waiting for
    return _json(await asyncio.shield(task))  # type: ignore[return-value]


def _landed(flight_key: tuple[Any, ...], live_key: tuple[Any, ...], task: asyncio.Future[bytes]) -> None:
    _inflight.pop(flight_key, None)
    if task.cancelled() or task.exception() is not None:  # errors are not cached
        return
    if len(_live_cache) > 10_000:
        _live_cache.clear()
    _live_cache[live_key] = (time.monotonic(), task.result())


def _check_readings(body: ReadingsIn, lang: str = "en") -> list[tuple[int, datetime]]:
    """Every reading checked against the one rule for readings (``core.reading_rules``) before
    anything is written: a request is stored whole or not at all (422 naming each bad reading,
    in Korean when the client asks for it with Accept-Language)."""
    from datetime import UTC

    from axhub.core.reading_rules import integer_problem, signal_name_problem, time_problem, value_problem

    problems: list[dict[str, Any]] = []
    times: list[tuple[int, datetime]] = []
    for i, r in enumerate(body.readings):
        when = r.time if r.time.tzinfo is not None else r.time.replace(tzinfo=UTC)
        for field, problem in (
            ("signal", signal_name_problem(r.signal)),
            ("time", time_problem(when)),
            # A JSON integer must fit int64 to be stored exactly; a rounded one is not stored.
            ("value", integer_problem(r.value) if type(r.value) is int else value_problem(r.value)),
        ):
            if problem is not None:
                problems.append(
                    {"index": i, "field": field, "code": problem.code, "message": problem.text(lang)}
                )
                break
        else:
            times.append((i, when.astimezone(UTC)))
    if problems:
        first = problems[0]
        if lang == "ko":
            more = f" (외 {len(problems) - 1}건)" if len(problems) > 1 else ""
            where = f"{first['index']}번 읽기값, {first['field']}"
            message = f"{where}: {first['message']}{more}; 아무것도 저장하지 않았습니다"
            hint = "details에 나온 읽기값을 고쳐 요청 전체를 다시 보내세요"
        else:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            message = (
                f"reading {first['index']}, {first['field']}: {first['message']}{more}; nothing was stored"
            )
            hint = "fix the readings listed in details and send the whole request again"
        raise ApiError(422, "validation_error", message, hint=hint, details=problems[:100])
    return times


def _bound_days(body: ReadingsIn) -> None:
    days = {as_utc(r.time).date() for r in body.readings}
    if len(days) > MAX_DAYS_PER_WRITE:
        raise ApiError(
            422,
            "validation_error",
            f"the readings span {len(days)} different days; at most {MAX_DAYS_PER_WRITE} per request",
            hint="send older readings in separate requests, one month at a time",
            details={"days": len(days), "limit": MAX_DAYS_PER_WRITE},
        )


@router.post("", operation_id="write_readings", response_model=WriteOut, status_code=201)
def write_readings(
    asset_id: str, body: ReadingsIn, scope: IngestScope, state: State, request: Request
) -> WriteOut:
    """Push a batch of readings (gateways with an ingest-only key); new signals are registered.

    Signal names may be Korean (or any language); times must lie in 2000..2100 UTC and values be
    finite. One bad reading refuses the whole request with a 422 that lists the bad readings.
    """
    from axhub.core.readings import FLOAT_EXACT_INT, make_batch, with_exact_ints

    asset = scope.get(AssetRow, asset_id)
    rows = body.readings
    lang = "ko" if request.headers.get("accept-language", "").lower().startswith("ko") else "en"
    times = _check_readings(body, lang)  # first: a year-1 time must not reach a date conversion
    _bound_days(body)
    values = [r.value for r in rows]
    batch = make_batch(
        asset.slug,
        [r.signal for r in rows],
        [int(when.timestamp() * 1_000_000) for _i, when in times],
        values,
        [r.quality for r in rows],
    )
    # Integers float64 would round travel exactly in value_int (checked to fit int64 above).
    exact = {i: v for i, v in enumerate(values) if type(v) is int and abs(v) > FLOAT_EXACT_INT}
    batch = with_exact_ints(batch, exact)
    result = _store(state).write(scope.org_id, batch)
    scope.register_signals(sorted({(asset.slug, r.signal, "") for r in rows}))
    written = getattr(result, "written", None)
    return WriteOut(written=int(written if written is not None else len(rows)))
