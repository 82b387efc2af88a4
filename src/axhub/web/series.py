"""Where an asset's readings lie in time, so its chart opens on data rather than an empty day.

The chart itself loads readings from the API's ``query_readings`` endpoint; this module only
asks the time-series store for an asset's extent when the store can tell.
"""

from __future__ import annotations

from datetime import datetime

from axhub.core.settings import Settings


def data_extent(settings: Settings, org_id: str, asset_slug: str) -> tuple[datetime, datetime] | None:
    """First and last reading time of an asset, or None when unknown."""
    try:
        from axhub.store.timeseries import TimeSeriesStore
    except ImportError:
        return None
    store = TimeSeriesStore(settings.timeseries_root)
    extent = getattr(store, "time_range", None) or getattr(store, "extent", None)
    if extent is None:
        return None
    try:
        found = extent(org_id, asset_slug)
    except Exception:  # an asset with no data yet is not an error for the page
        return None
    if not found or found[0] is None:
        return None
    return found[0], found[1]
