"""Deleting stored readings: one signal's series or a whole machine's (administrators).

The machine and its signals stay; only their readings go, those still in the write-ahead log
included (``TimeSeriesStore.delete_asset`` / ``delete_signal`` drain the log first), so nothing
sent before the delete comes back later.
"""

from __future__ import annotations

from fastapi import APIRouter

from axhub.api.deps import AdminScope, State, timeseries_store
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.series import SeriesDeleted
from axhub.store.models import AssetRow, SignalRow

router = APIRouter(tags=["readings"], responses=ERROR_RESPONSES)


@router.delete(
    "/assets/{asset_id}/readings", operation_id="delete_asset_readings", response_model=SeriesDeleted
)
def delete_asset_readings(asset_id: str, scope: AdminScope, state: State) -> SeriesDeleted:
    """Delete every stored reading of this machine (administrators); the machine stays."""
    asset = scope.get(AssetRow, asset_id)
    rows = timeseries_store(state).delete_asset(scope.org_id, asset.slug)
    return SeriesDeleted(id=asset_id, rows=rows)


@router.delete(
    "/signals/{signal_id}/readings", operation_id="delete_signal_readings", response_model=SeriesDeleted
)
def delete_signal_readings(signal_id: str, scope: AdminScope, state: State) -> SeriesDeleted:
    """Delete every stored reading of this signal (administrators); the signal stays."""
    signal = scope.get(SignalRow, signal_id)
    asset = scope.get(AssetRow, signal.asset_id)
    rows = timeseries_store(state).delete_signal(scope.org_id, asset.slug, signal.name)
    return SeriesDeleted(id=signal_id, rows=rows)
