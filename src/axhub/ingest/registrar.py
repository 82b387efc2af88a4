"""Signals that live connectors store are registered in the metadata database, as file ingest
and the HTTP API do, so the dashboard lists an MQTT/OPC UA/Modbus signal (Korean names too)
from its first reading. Asset ids made from names keep the name as the asset's display name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from axhub.store.db import Database
from axhub.store.models import AssetRow
from axhub.store.scoped import OrgScope

log = logging.getLogger(__name__)


class SignalRegistrar:
    """``on_written`` hook: registers each (asset, signal) pair the first time it is stored."""

    def __init__(
        self, db: Database, org_id: str, display_names: Callable[[], dict[str, str]] | None = None
    ) -> None:
        self.db = db
        self.org_id = org_id
        self.display_names = display_names
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, batch: pa.Table) -> None:
        pairs = pa.table(
            {"a": pc.cast(batch["asset"], pa.string()), "s": pc.cast(batch["signal"], pa.string())}
        )
        unique = pairs.group_by(["a", "s"]).aggregate([]).to_pylist()
        with self._lock:
            new = [(r["a"], r["s"]) for r in unique if (r["a"], r["s"]) not in self._seen]
            if not new:
                return
            names = self.display_names() if self.display_names is not None else {}
            try:
                with self.db.session() as session:
                    scope = OrgScope(session, self.org_id)
                    scope.register_signals(sorted((a, s, "") for a, s in new))
                    for asset in {a for a, _s in new if a in names}:
                        row = scope.find(AssetRow, slug=asset)
                        if row is not None and row.name == row.slug:
                            row.name = names[asset][:200]
            except Exception:  # registering is a convenience: it must never stop ingestion
                log.exception("could not register %d new signal(s)", len(new))
                return
            self._seen.update(new)
