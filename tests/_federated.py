"""Shared by the federated tests: companies with readings under Korean signal names."""

from __future__ import annotations

import numpy as np

from axhub.core.readings import make_batch
from axhub.store.db import Database
from axhub.store.platform import create_org
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore


def _company(db: Database, store: TimeSeriesStore, name: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    with db.session() as s:
        org = create_org(s, name, slug=f"company-{seed}")
        scope = OrgScope(s, org.id)
        scope.ensure_asset(scope.ensure_site("창원 1공장"), "프레스 1", slug="press-1")
        org_id = org.id
    ts = np.arange(300, dtype=np.int64) * 60_000_000 + 1_764_000_000_000_000
    temp, vib = rng.normal(60, 5, 300), rng.normal(2, 0.3, 300)
    for signal, value in (("온도", temp), ("진동", vib), ("잔여수명", 200 - temp - 10 * vib)):
        store.write(org_id, make_batch("press-1", signal, ts, value))
    return org_id


SCHEMA = {"signals": ["온도", "진동"], "target": "잔여수명"}
MAPPING = {"asset": "press-1", "signals": {"온도": "온도", "진동": "진동", "잔여수명": "잔여수명"}}
