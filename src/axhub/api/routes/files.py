"""The file wizard's API: upload once, preview (edit settings, preview again), ingest onto a
machine (scored by its deployed models), and the mapping saved per machine.

Every message is in the request's language (``?lang=ko|en`` or ``Accept-Language``) and names
the file by the name the user gave it, never a server path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import ValidationError

from axhub.api.deps import AppState, Ingester, IngestScope, ReadScope, State, UploadSlot, WriteScope
from axhub.api.errors import ERROR_RESPONSES, ApiError, request_lang
from axhub.api.routes.data import _SHA256, _owns_upload, _record_upload
from axhub.api.schemas.files import (
    ColumnOut,
    CountsOut,
    FileIngestIn,
    FileIngestOut,
    FilePreviewOut,
    PreviewIn,
    ProblemOut,
    RefusedOut,
    RowOut,
    SavedMappingIn,
    SavedMappingOut,
)
from axhub.core.errors import InputProblem, InputValidationError, problem
from axhub.core.messages import Lang
from axhub.ingest.file_limits import check_table, safe_filename
from axhub.ingest.file_mapping import FileMapping
from axhub.ingest.file_preview import FilePreview, preview_file
from axhub.ingest.file_readers import EXCEL_SUFFIXES, PARQUET_SUFFIXES
from axhub.serve.files import find_asset, ingest_onto_asset, save_mapping, starting_mapping
from axhub.store.models import AssetRow, FileMappingRow, IngestRunRow
from axhub.store.scoped import OrgScope

uploads = APIRouter(prefix="/uploads", tags=["uploads"], responses=ERROR_RESPONSES)
mappings = APIRouter(prefix="/assets/{asset_id}/file-mapping", tags=["uploads"], responses=ERROR_RESPONSES)

TABLE_FILES = {".csv", ".txt", ".tsv", *EXCEL_SUFFIXES, *PARQUET_SUFFIXES}


def read_table_upload(file: UploadFile, state: AppState, default_name: str) -> tuple[str, str, bytes]:
    """An uploaded table, read within bounds: its safe name, its suffix and its bytes. A file
    that is not a table is refused whole (422), one over the upload limit with 413, and its
    decoded size is bounded before any reader runs (413/422)."""
    filename = safe_filename(file.filename, default_name)
    suffix = Path(filename).suffix.lower()
    if suffix not in TABLE_FILES:
        raise InputValidationError(problem(filename, None, None, "file_kind"), whole_file=True)
    raw = file.file.read(state.max_upload_bytes + 1)
    if len(raw) > state.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"upload larger than {state.max_upload_bytes} bytes")
    kind = "parquet" if suffix in PARQUET_SUFFIXES else "xlsx" if suffix in EXCEL_SUFFIXES else "csv"
    check_table(raw, kind, filename)
    return filename, suffix, raw


def _problems(items: list[InputProblem], lang: Lang) -> list[ProblemOut]:
    return [
        ProblemOut(file=p.file, row=p.row, field=p.field, problem=p.text(lang), code=p.code or None)
        for p in items
    ]


def _mapping_from_text(text: str | None, filename: str) -> FileMapping | None:
    if not text:
        return None
    try:
        return FileMapping.model_validate_json(text)
    except ValidationError as exc:
        raise InputValidationError(
            [
                problem(
                    filename,
                    None,
                    None,
                    "setting_invalid",
                    setting=".".join(map(str, e["loc"])),
                    reason=e["msg"],
                )
                for e in exc.errors()
            ]
        ) from exc


def _upload_name(scope: OrgScope, sha256: str) -> str:
    # Only a real sha256 (64 hex digits), matched as a prefix with LIKE wildcards escaped.
    if not _SHA256.fullmatch(sha256):
        raise ApiError(404, "not_found", "no upload with that id", hint="upload the file first")
    prefix = f"upload:{sha256}:"
    stmt = scope.select(IngestRunRow).where(IngestRunRow.source.startswith(prefix, autoescape=True)).limit(1)
    row = scope.session.scalars(stmt).first()
    if row is None:
        raise ApiError(404, "not_found", "no upload with that id", hint="upload the file first")
    return row.source.split(":", 2)[2]


@contextmanager
def _as_file(state: AppState, sha256: str, filename: str) -> Iterator[Path]:
    """The stored upload under its own name (the engine tells CSV, .xlsx and Parquet by suffix)."""
    with tempfile.TemporaryDirectory(prefix="axhub-file-") as tmp:
        path = Path(tmp) / (Path(filename).name or "upload.csv")
        blob = state.blobs.path(sha256)
        if not blob.is_file():
            raise ApiError(404, "not_found", "no upload with that id", hint="upload the file first")
        try:
            os.symlink(blob, path)
        except OSError:
            shutil.copyfile(blob, path)
        yield path


def _preview_out(
    preview: FilePreview, sha: str, filename: str, size: int, asset: AssetRow | None, source: str, lang: Lang
) -> FilePreviewOut:
    report = preview.report
    refused = None
    if preview.refused:
        message, hint = InputValidationError(preview.refused, whole_file=True).render(lang)
        refused = RefusedOut(message=message, hint=hint, problems=_problems(preview.refused, lang))
    counts = CountsOut()
    if report is not None:
        counts = CountsOut(
            rows_read=report.rows_read,
            rows_rejected=report.rows_rejected,
            values_rejected=report.values_rejected,
            empty_cells=report.empty_cells,
            points=report.points_written,
            points_by_signal=preview.points,
            first_time=report.first_ts,
            last_time=report.last_ts,
        )
    return FilePreviewOut(
        sha256=sha,
        filename=filename,
        bytes=size,
        asset_id=asset.id if asset else None,
        asset=asset.slug if asset else None,
        settings=preview.settings,
        mapping=preview.mapping.model_dump(mode="json", exclude_none=True),
        mapping_source=source,
        columns=[ColumnOut(**c.__dict__) for c in preview.columns],
        rows=[RowOut(**r.__dict__) for r in preview.rows],
        counts=counts,
        problems=_problems(report.first_rejects if report else [], lang),
        refused=refused,
    )


def _preview(
    scope: OrgScope,
    state: AppState,
    sha: str,
    filename: str,
    asset_ref: str | None,
    given: FileMapping | None,
    rows: int,
    lang: Lang,
) -> FilePreviewOut:
    asset = find_asset(scope, asset_ref) if asset_ref else None
    mapping, source = starting_mapping(scope, asset, given)
    with _as_file(state, sha, filename) as path:
        preview = preview_file(path, mapping, label=filename, rows=rows)
        size = path.stat().st_size
    return _preview_out(preview, sha, filename, size, asset, source, lang)


@uploads.post("/preview", operation_id="preview_upload", response_model=FilePreviewOut, status_code=201)
def preview_upload(
    request: Request,
    scope: IngestScope,
    _slot: UploadSlot,
    state: State,
    file: Annotated[UploadFile, File(description="CSV (any encoding), .xlsx or Parquet")],
    asset: Annotated[str | None, Form(max_length=100, description="Machine id or slug")] = None,
    mapping: Annotated[
        str | None, Form(max_length=100_000, description="FileMapping as JSON (optional)")
    ] = None,
    rows: Annotated[int, Form(ge=1, le=200)] = 20,
) -> FilePreviewOut:
    """Upload a file and preview it: detected settings (editable), column roles, the first rows
    as parsed, counts over the whole file. Nothing is stored in the time series yet; send the
    returned ``sha256`` to ``/uploads/{sha256}/preview`` (changed settings) or ``/ingest``."""
    filename, _, raw = read_table_upload(file, state, "upload.csv")
    lang = request_lang(request)
    given = _mapping_from_text(mapping, filename)
    sha = state.blobs.put(raw)
    if not _owns_upload(scope, sha):
        _record_upload(scope, sha, filename)
    return _preview(scope, state, sha, filename, asset, given, rows, lang)


@uploads.post("/{sha256}/preview", operation_id="repreview_upload", response_model=FilePreviewOut)
def repreview_upload(
    sha256: str, body: PreviewIn, request: Request, scope: IngestScope, state: State
) -> FilePreviewOut:
    """Preview an uploaded file again with edited settings or column roles."""
    filename = _upload_name(scope, sha256)
    return _preview(
        scope, state, sha256, filename, body.asset, body.mapping, body.rows, request_lang(request)
    )


@uploads.post("/{sha256}/ingest", operation_id="ingest_upload", response_model=FileIngestOut)
def ingest_upload(
    sha256: str, body: FileIngestIn, request: Request, scope: IngestScope, principal: Ingester, state: State
) -> FileIngestOut:
    """Store an uploaded file's readings on a machine with the (edited) mapping; the mapping is
    saved for the machine's next file and its deployed models score the file's period. A file
    that cannot be used at all is refused as a whole (422 ``file_refused``), nothing stored."""
    lang = request_lang(request)
    filename = _upload_name(scope, sha256)
    asset = find_asset(scope, body.asset)
    scope.session.commit()  # the flow below opens its own sessions
    with _as_file(state, sha256, filename) as path:
        result = ingest_onto_asset(
            state.db,
            state.settings,
            scope.org_id,
            path,
            asset=asset.id,
            mapping=body.mapping,
            label=filename,
            source=f"upload:{sha256}:{filename}",
            save=body.save_mapping,
            score=body.score,
            actor=principal.actor,
        )
    report = result.report
    return FileIngestOut(
        sha256=sha256,
        filename=filename,
        asset_id=asset.id,
        asset=asset.slug,
        settings=report.settings,
        mapping=result.mapping.model_dump(mode="json", exclude_none=True),
        mapping_source=result.mapping_source,
        rows_read=report.rows_read,
        points_written=report.points_written,
        duplicates=report.duplicates,
        rows_rejected=report.rows_rejected,
        values_rejected=report.values_rejected,
        empty_cells=report.empty_cells,
        first_time=report.first_ts,
        last_time=report.last_ts,
        signals=sorted({s.signal for s in report.signals}),
        new_signals=result.new_signals,
        problems=_problems(report.first_rejects, lang),
        alerts=result.alerts,
        ingest_run_id=result.ingest_run_id,
    )


@mappings.get("", operation_id="get_file_mapping", response_model=SavedMappingOut)
def get_file_mapping(asset_id: str, scope: ReadScope) -> SavedMappingOut:
    """The mapping offered for this machine's next file (null when none was saved yet)."""
    asset = scope.get(AssetRow, asset_id)
    row = scope.find(FileMappingRow, asset_id=asset.id)
    if row is None:
        return SavedMappingOut(asset_id=asset.id, mapping=None)
    return SavedMappingOut(
        asset_id=asset.id, mapping=row.mapping, updated_by=row.updated_by, updated_at=row.updated_at
    )


@mappings.put("", operation_id="put_file_mapping", response_model=SavedMappingOut)
def put_file_mapping(
    asset_id: str, body: SavedMappingIn, scope: WriteScope, principal: Ingester
) -> SavedMappingOut:
    """Save the mapping for this machine's files (column -> signal, unit, display name, ignore)."""
    asset = scope.get(AssetRow, asset_id)
    save_mapping(scope, asset, body.mapping, principal.actor)
    scope.session.flush()
    return get_file_mapping(asset_id, scope)
