"""A file onto a machine, start to finish: one function behind ``axhub ingest`` and uploads.

1. the machine's saved mapping is the starting point (else the detected one); its time zone
   defaults to the machine's site (sites default to the company's zone);
2. text columns nobody mapped are ignored (as the preview offers), the file is ingested by the
   one file engine;
3. the signals are registered with their units and display names, the mapping is saved for the
   machine's next file, the run is recorded (with its rejects file) for ``deadletters``;
4. every model deployed on the machine scores the period the file covered, and alerts are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from axhub.core.errors import NotFoundError
from axhub.core.settings import Settings
from axhub.core.timeutil import utcnow
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_preview import preview_file
from axhub.ingest.files import IngestReport, default_rejects_path, ingest_file
from axhub.serve.batch import score_new_data
from axhub.store.db import Database
from axhub.store.models import AssetRow, FileMappingRow, IngestRunRow, SignalRow
from axhub.store.scoped import OrgScope
from axhub.store.timeseries import TimeSeriesStore

# Settings a saved mapping keeps (the rest is detected again for each file).
_KEPT = (
    "layout",
    "time_column",
    "time_format",
    "timezone",
    "columns",
    "ignore",
    "only_mapped",
    "decimal",
    "thousands",
)


@dataclass
class FileIngestResult:
    report: IngestReport
    mapping: FileMapping
    mapping_source: str  # 'given' | 'saved' | 'detected'
    assets: list[str] = field(default_factory=list)
    new_signals: int = 0
    alerts: list[str] = field(default_factory=list)
    ingest_run_id: str | None = None


def find_asset(scope: OrgScope, ref: str) -> AssetRow:
    """A machine by id or by slug (another company's look missing)."""
    row = scope.find(AssetRow, id=ref) or scope.find(AssetRow, slug=ref)
    if row is None:
        raise NotFoundError(f"machine '{ref}' not found", hint="create the machine first")
    return row


def saved_mapping(scope: OrgScope, asset: AssetRow) -> FileMapping | None:
    row = scope.find(FileMappingRow, asset_id=asset.id)
    return FileMapping.model_validate(row.mapping) if row is not None else None


def save_mapping(scope: OrgScope, asset: AssetRow, mapping: FileMapping, actor: str | None) -> None:
    data = mapping.model_dump(include=set(_KEPT), exclude_none=True)
    row = scope.find(FileMappingRow, asset_id=asset.id)
    if row is None:
        scope.add(FileMappingRow(asset_id=asset.id, mapping=data, updated_by=actor))
    else:
        row.mapping, row.updated_by, row.updated_at = data, actor, utcnow()


def starting_mapping(
    scope: OrgScope, asset: AssetRow | None, given: FileMapping | None
) -> tuple[FileMapping, str]:
    """The mapping a file of ``asset`` starts from, and where it came from."""
    if given is not None:
        mapping, source = given, "given"
    elif asset is not None and (saved := saved_mapping(scope, asset)) is not None:
        mapping, source = saved, "saved"
    else:
        mapping, source = FileMapping(), "detected"
    updates: dict[str, Any] = {}
    if asset is not None:
        updates["asset"] = asset.slug
        if mapping.timezone is None:
            updates["timezone"] = scope.timezone_for_asset(asset)
    elif mapping.timezone is None:
        updates["timezone"] = scope.org_timezone()
    return mapping.model_copy(update=updates), source


def register(scope: OrgScope, report: IngestReport, mapping: FileMapping) -> int:
    new = scope.register_signals([(s.asset, s.signal, s.unit or "") for s in report.signals])
    # Display names given in the mapping become the signals' descriptions (when they have none).
    names = {(c.signal or col): c.display_name for col, c in mapping.columns.items() if c.display_name}
    for seen in report.signals:
        if seen.signal in names:
            asset = scope.find(AssetRow, slug=seen.asset)
            sig = scope.find(SignalRow, asset_id=asset.id, name=seen.signal) if asset else None
            if sig is not None and not sig.description:
                sig.description = names[seen.signal] or ""
            # ... and their Korean display names (the dashboard's wizard asks for exactly that).
            if sig is not None and not sig.name_ko:
                sig.name_ko = names[seen.signal] or ""
    return new


def ingest_onto_asset(
    db: Database,
    settings: Settings,
    org_id: str,
    path: Path,
    *,
    asset: str | None,
    mapping: FileMapping | None = None,
    label: str | None = None,
    source: str | None = None,
    save: bool = True,
    score: bool = True,
    actor: str | None = None,
    progress: bool = False,
    console: Console | None = None,
    rejects_path: Path | None = None,
    block_bytes: int | None = None,
    compact: bool = True,
    create_missing_asset: bool = False,
) -> FileIngestResult:
    """Ingest ``path`` for ``org_id`` onto ``asset`` (id or slug); see the module docstring."""
    label = label or str(path)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        row: AssetRow | None = None
        if asset is not None:
            try:
                row = find_asset(scope, asset)
            except NotFoundError:
                if not create_missing_asset:
                    raise
        start, where = starting_mapping(scope, row, mapping)
        if row is None and asset is not None:
            start = start.model_copy(update={"asset": asset})
    if where != "given" or not (start.columns or start.ignore):
        start = preview_file(path, start, label=label, count=False).mapping
    # On record before anything is stored: a request that dies part-way leaves an unfinished run
    # that names what was being stored, never readings that nothing lists.
    with db.session() as session:
        run_id = OrgScope(session, org_id).add(IngestRunRow(source=(source or f"file:{label}")[:500])).id
    store = TimeSeriesStore(settings.timeseries_root)
    if rejects_path is None:
        rejects_path = default_rejects_path(settings.home / "rejects" / org_id, Path(path.name))
    extra: dict[str, Any] = {"block_bytes": block_bytes} if block_bytes else {}
    report = ingest_file(
        path,
        store,
        org_id,
        start,
        label=label,
        rejects_path=rejects_path,
        progress=progress,
        console=console,
        **extra,
    )
    assets = sorted({s.asset for s in report.signals})
    result = FileIngestResult(report, start, where, assets)
    with db.session() as session:
        scope = OrgScope(session, org_id)
        result.new_signals = register(scope, report, start)
        if save and assets:
            target = scope.find(AssetRow, slug=start.asset) if start.asset else None
            if target is not None:
                save_mapping(scope, target, start, actor)
        run = scope.get(IngestRunRow, run_id)
        run.rows_read = report.rows_read
        run.points_written = report.points_written
        run.rows_rejected = report.rows_rejected
        run.rejects_path = str(report.rejects_path) if report.rejects_path else None
        run.finished_at = utcnow()
        result.ingest_run_id = run.id
    if compact and report.first_ts is not None:
        # Only the upload's days, in bounded merges: a day that also holds a stream is never
        # read whole, and the asset's other days are left as they are.
        for slug in assets:
            store.tidy(org_id, slug, report.first_ts, report.last_ts)
    if score and report.points_written:  # a file already stored raises nothing new
        result.alerts = score_new_data(db, settings, org_id, set(assets), report.first_ts, report.last_ts)
    return result
