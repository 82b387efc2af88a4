"""Uploads (CSV, Parquet, images) and datasets (immutable, versioned selections to train on)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import ValidationError

from axhub.api.deps import AppState, IngestScope, ReadScope, State, UploadSlot, WriteScope
from axhub.api.errors import ERROR_RESPONSES, ApiError, request_lang
from axhub.api.routes._util import page_of
from axhub.api.schemas.common import Deleted, Page, Paging, paging
from axhub.api.schemas.work import DatasetCreate, DatasetOut, RejectOut, UploadOut
from axhub.core.errors import InputProblem, InputValidationError
from axhub.core.timeutil import utcnow
from axhub.ingest.file_limits import check_image, check_table, safe_filename
from axhub.ingest.file_mapping import ColumnMap, FileMapping
from axhub.ingest.file_table import read_table
from axhub.jobs.data import check_dataset_spec
from axhub.serve.files import FileIngestResult, ingest_onto_asset
from axhub.store.models import DatasetRow, IngestRunRow
from axhub.store.scoped import OrgScope

uploads = APIRouter(prefix="/uploads", tags=["uploads"], responses=ERROR_RESPONSES)
datasets = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERROR_RESPONSES)

TABLE_SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MAX_REJECTS_SHOWN = 200
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


def new_dataset(scope: OrgScope, name: str, kind: str, spec: dict[str, Any]) -> DatasetRow:
    """The next version of dataset ``name`` (datasets are never edited, only re-versioned)."""
    latest = scope.list(DatasetRow, name=name, order_by=DatasetRow.version.desc(), limit=1)
    version = latest[0].version + 1 if latest else 1
    return scope.add(DatasetRow(name=name, version=version, kind=kind, spec=spec))


def _record_upload(
    scope: OrgScope, sha: str, filename: str, rows: int = 0, rejected: int = 0
) -> IngestRunRow:
    # Blobs are content-addressed and shared; this row is what makes an upload *this*
    # organisation's, so a dataset can only point at content its own organisation uploaded.
    return scope.add(
        IngestRunRow(
            source=f"upload:{sha}:{filename}", rows_read=rows, rows_rejected=rejected, finished_at=utcnow()
        )
    )


def _owns_upload(scope: OrgScope, sha: str) -> bool:
    # Only a real sha256 (64 hex digits): '%' or '_' in it would be LIKE wildcards matching
    # any upload; the prefix match escapes them anyway.
    if not _SHA256.fullmatch(sha):
        return False
    prefix = f"upload:{sha}:"
    stmt = scope.select(IngestRunRow).where(IngestRunRow.source.startswith(prefix, autoescape=True)).limit(1)
    return scope.session.scalars(stmt).first() is not None


def _row_problems(frame: Any, filename: str) -> list[InputProblem]:
    """Rows the ingestion layer would reject: empty rows and unparseable numbers in numeric-looking
    columns (a column is numeric-looking when most of its values parse)."""
    import pandas as pd

    problems: list[InputProblem] = []
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            continue
        parsed = pd.to_numeric(series, errors="coerce")
        if parsed.notna().mean() < 0.8:
            continue  # a text column (ids, labels, timestamps)
        for row in series.index[parsed.isna() & series.notna()]:
            problems.append(
                InputProblem(filename, int(row) + 2, str(column), f"not a number: {series[row]!r}")
            )
    return problems


def _store_readings(
    scope: OrgScope,
    state: AppState,
    path: Path,
    filename: str,
    sha: str,
    asset: str,
    time_column: str | None,
    timezone: str | None,
    signals: str | None,
) -> FileIngestResult:
    """Ingest an uploaded table onto one of this organisation's machines, as ``axhub ingest``
    would: same engine, same validation, same idempotent writes, then deployed models score it."""
    row = scope.asset_by_slug(asset)  # only this organisation's assets
    picked = [c.strip() for c in (signals or "").split(",") if c.strip()]
    given: FileMapping | None = None
    if time_column or timezone or picked:
        try:
            given = FileMapping(
                layout="wide",
                time_column=time_column or None,
                timezone=timezone or None,
                columns={c: ColumnMap() for c in picked},
                only_mapped=bool(picked),
            )
        except ValidationError as exc:
            raise InputValidationError(
                [InputProblem(filename, None, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            ) from exc
    scope.session.commit()  # the flow below opens its own sessions
    return ingest_onto_asset(
        state.db,
        state.settings,
        scope.org_id,
        path,
        asset=row.id,
        mapping=given,
        label=filename,
        source=f"upload:{sha}:{filename}",
        save=False,
    )


@uploads.post("", operation_id="create_upload", response_model=UploadOut, status_code=201)
def create_upload(
    request: Request,
    scope: IngestScope,
    _slot: UploadSlot,
    state: State,
    file: Annotated[UploadFile, File(description="CSV, Parquet or an image (PNG, JPEG, BMP, TIFF)")],
    dataset_name: Annotated[str | None, Form(max_length=200)] = None,
    kind: Annotated[Literal["auto", "table", "image"], Form()] = "auto",
    asset: Annotated[str | None, Form(max_length=100, description="Store the readings on this asset")] = None,
    time_column: Annotated[str | None, Form(max_length=200)] = None,
    timezone: Annotated[str | None, Form(max_length=64, description="Zone of naive times")] = None,
    signals: Annotated[
        str | None, Form(max_length=10_000, description="Comma-separated columns to store (default all)")
    ] = None,
) -> UploadOut:
    """Upload a table or an image. Tables are checked row by row (rejected rows are listed with
    row and field) and, with ``dataset_name``, become the next version of that dataset. With
    ``asset``, a table's readings are also stored in the time-series store (wide layout: a time
    column and one column per signal); good rows land, bad rows come back as rejects."""
    filename = safe_filename(file.filename)
    lang = request_lang(request)
    suffix = _suffix(filename)
    if kind == "auto":
        kind = "table" if suffix in TABLE_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else "auto"
    if kind == "auto":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"cannot tell what {filename!r} is",
            hint="upload .csv, .parquet or an image, or set kind",
        )
    raw = file.file.read(state.max_upload_bytes + 1)
    if len(raw) > state.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"upload larger than {state.max_upload_bytes} bytes")
    if kind == "image":
        check_image(raw, filename)
        sha = state.blobs.put(raw)
        run = _record_upload(scope, sha, filename, rows=1)
        return UploadOut(
            kind="image", filename=filename, bytes=len(raw), sha256=sha, rows_read=1, ingest_run_id=run.id
        )

    fmt = TABLE_SUFFIXES.get(suffix, "csv")
    check_table(raw, fmt, filename)  # decoded size bounded before any reader runs (413/422)
    sha = state.blobs.put(raw)
    points_written, rows_read = 0, 0
    problems: list[InputProblem]
    columns: list[str] = []
    # The one file engine reads every table (any encoding, .xlsx, decimal commas, Korean times);
    # messages name the file as the user called it, never a server path.
    from axhub.api.routes.files import _as_file

    with _as_file(state, sha, filename) as path:
        if asset:
            # The file flow records the upload (unfinished) before any reading is stored.
            result = _store_readings(scope, state, path, filename, sha, asset, time_column, timezone, signals)
            report = result.report
            problems = list(report.first_rejects)
            rejected_rows, points_written = report.rows_rejected, report.points_written
            rows_read = report.rows_read
            columns = [s.signal for s in report.signals]
            run = scope.get(IngestRunRow, str(result.ingest_run_id))
        else:
            frame = read_table(path, filename)
            problems = _row_problems(frame, filename)
            rejected_rows, rows_read = len({p.row for p in problems}), len(frame)
            columns = [str(c) for c in frame.columns]
            run = _record_upload(scope, sha, filename, rows=rows_read, rejected=rejected_rows)
            run.points_written = points_written
    dataset = None
    if dataset_name:
        spec = {
            "source": "upload",
            "blob_sha256": sha,
            "format": fmt,
            "filename": filename,
            "rows": rows_read,
            "columns": columns,
        }
        dataset = DatasetOut.model_validate(new_dataset(scope, dataset_name, "table", spec))
    return UploadOut(
        kind="table",
        filename=filename,
        bytes=len(raw),
        sha256=sha,
        rows_read=rows_read,
        rows_rejected=rejected_rows,
        points_written=points_written,
        ingest_run_id=run.id,
        rejects=[
            RejectOut(file=p.file, row=p.row, field=p.field, problem=p.text(lang))
            for p in problems[:MAX_REJECTS_SHOWN]
        ],
        dataset=dataset,
    )


@datasets.get("", operation_id="list_datasets", response_model=Page[DatasetOut])
def list_datasets(
    scope: ReadScope, pg: Annotated[Paging, Depends(paging)], name: str | None = None
) -> Page[DatasetOut]:
    return page_of(scope, DatasetRow, DatasetOut, pg, order_by=DatasetRow.created_at.desc(), name=name)


@datasets.post("", operation_id="create_dataset", response_model=DatasetOut, status_code=201)
def create_dataset(body: DatasetCreate, scope: WriteScope) -> DatasetOut:
    """Define a dataset (a new version when the name exists)."""
    check_dataset_spec(body.spec)
    if body.spec["source"] == "upload" and not _owns_upload(scope, str(body.spec["blob_sha256"])):
        raise ApiError(404, "not_found", "no upload with that sha256", hint="upload the file first")
    return DatasetOut.model_validate(new_dataset(scope, body.name, body.kind, dict(body.spec)))


@datasets.get("/{dataset_id}", operation_id="get_dataset", response_model=DatasetOut)
def get_dataset(dataset_id: str, scope: ReadScope) -> DatasetOut:
    return DatasetOut.model_validate(scope.get(DatasetRow, dataset_id))


@datasets.delete("/{dataset_id}", operation_id="delete_dataset", response_model=Deleted)
def delete_dataset(dataset_id: str, scope: WriteScope) -> Deleted:
    row = scope.get(DatasetRow, dataset_id)
    scope.delete(row)
    return Deleted(id=dataset_id)
