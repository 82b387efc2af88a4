"""Plant structure: sites, assets (machines, lines) and their signals (tags)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from axhub.api.deps import ReadScope, State, WriteScope, timeseries_store
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes._util import apply_update, page_of
from axhub.api.schemas.common import Deleted, Page, Paging, paging
from axhub.api.schemas.plant import (
    AssetCreate,
    AssetOut,
    AssetUpdate,
    SignalCreate,
    SignalOut,
    SignalUpdate,
    SiteCreate,
    SiteOut,
    SiteUpdate,
)
from axhub.core.errors import ConflictError
from axhub.core.ids import check_path_safe, slugify
from axhub.core.timeutil import parse_timezone
from axhub.store.models import AssetRow, SignalRow, SiteRow

sites = APIRouter(prefix="/sites", tags=["sites"], responses=ERROR_RESPONSES)
assets = APIRouter(prefix="/assets", tags=["assets"], responses=ERROR_RESPONSES)
signals = APIRouter(prefix="/signals", tags=["signals"], responses=ERROR_RESPONSES)

Pg = Annotated[Paging, Depends(paging)]


# ---------------------------------------------------------------------------------- sites
@sites.get("", operation_id="list_sites", response_model=Page[SiteOut])
def list_sites(scope: ReadScope, pg: Pg) -> Page[SiteOut]:
    return page_of(scope, SiteRow, SiteOut, pg, order_by=SiteRow.name)


@sites.post("", operation_id="create_site", response_model=SiteOut, status_code=201)
def create_site(body: SiteCreate, scope: WriteScope) -> SiteOut:
    zone = body.timezone or scope.org_timezone()
    parse_timezone(zone)
    if scope.find(SiteRow, name=body.name):
        raise ConflictError(f"site '{body.name}' already exists")
    row = SiteRow(name=body.name, timezone=zone, name_ko=body.name_ko, name_en=body.name_en)
    return SiteOut.model_validate(scope.add(row))


@sites.get("/{site_id}", operation_id="get_site", response_model=SiteOut)
def get_site(site_id: str, scope: ReadScope) -> SiteOut:
    return SiteOut.model_validate(scope.get(SiteRow, site_id))


@sites.patch("/{site_id}", operation_id="update_site", response_model=SiteOut)
def update_site(site_id: str, body: SiteUpdate, scope: WriteScope) -> SiteOut:
    row = scope.get(SiteRow, site_id)
    if body.timezone:
        parse_timezone(body.timezone)
    apply_update(row, body)
    scope.session.flush()
    return SiteOut.model_validate(row)


@sites.delete("/{site_id}", operation_id="delete_site", response_model=Deleted)
def delete_site(site_id: str, scope: WriteScope) -> Deleted:
    scope.delete(scope.get(SiteRow, site_id))
    return Deleted(id=site_id)


# ---------------------------------------------------------------------------------- assets
@assets.get("", operation_id="list_assets", response_model=Page[AssetOut])
def list_assets(
    scope: ReadScope, pg: Pg, site_id: Annotated[str | None, Query(max_length=40)] = None
) -> Page[AssetOut]:
    return page_of(scope, AssetRow, AssetOut, pg, order_by=AssetRow.slug, site_id=site_id)


@assets.post("", operation_id="create_asset", response_model=AssetOut, status_code=201)
def create_asset(body: AssetCreate, scope: WriteScope) -> AssetOut:
    site = scope.get(SiteRow, body.site_id)
    if body.parent_id:
        scope.get(AssetRow, body.parent_id)
    slug = check_path_safe(body.slug or slugify(body.name), "asset")
    if scope.find(AssetRow, slug=slug):
        raise ConflictError(f"asset '{slug}' already exists", hint="choose another slug")
    row = scope.add(
        AssetRow(
            site_id=site.id,
            name=body.name,
            slug=slug,
            kind=body.kind,
            parent_id=body.parent_id,
            description=body.description,
            name_ko=body.name_ko,
            name_en=body.name_en,
        )
    )
    return AssetOut.model_validate(row)


@assets.get("/{asset_id}", operation_id="get_asset", response_model=AssetOut)
def get_asset(asset_id: str, scope: ReadScope) -> AssetOut:
    return AssetOut.model_validate(scope.get(AssetRow, asset_id))


@assets.patch("/{asset_id}", operation_id="update_asset", response_model=AssetOut)
def update_asset(asset_id: str, body: AssetUpdate, scope: WriteScope) -> AssetOut:
    row = scope.get(AssetRow, asset_id)
    if body.parent_id:
        if body.parent_id == row.id:
            raise ConflictError("an asset cannot be its own parent")
        scope.get(AssetRow, body.parent_id)
    apply_update(row, body)
    scope.session.flush()
    return AssetOut.model_validate(row)


@assets.delete("/{asset_id}", operation_id="delete_asset", response_model=Deleted)
def delete_asset(asset_id: str, scope: WriteScope, state: State) -> Deleted:
    """Delete a machine with its signals and its stored readings (a new machine with the same
    name starts empty)."""
    row = scope.get(AssetRow, asset_id)
    slug = row.slug
    store = timeseries_store(state)
    # Readings first (log drained): killed before the metadata goes, the machine is still
    # there to delete again, never a nameless series a new machine of that name would inherit.
    store.delete_asset(scope.org_id, slug)
    scope.delete(row)
    scope.session.commit()
    store.delete_asset(scope.org_id, slug)  # what a stream sent while the machine still existed
    state.asset_cache.pop((scope.org_id, asset_id), None)  # the readings routes' slug cache
    return Deleted(id=asset_id)


# ---------------------------------------------------------------------------------- signals
@signals.get("", operation_id="list_signals", response_model=Page[SignalOut])
def list_signals(
    scope: ReadScope, pg: Pg, asset_id: Annotated[str | None, Query(max_length=40)] = None
) -> Page[SignalOut]:
    return page_of(scope, SignalRow, SignalOut, pg, order_by=SignalRow.name, asset_id=asset_id)


@signals.post("", operation_id="create_signal", response_model=SignalOut, status_code=201)
def create_signal(body: SignalCreate, scope: WriteScope) -> SignalOut:
    asset = scope.get(AssetRow, body.asset_id)
    if scope.find(SignalRow, asset_id=asset.id, name=body.name):
        raise ConflictError(f"signal '{body.name}' already exists on asset '{asset.slug}'")
    return SignalOut.model_validate(scope.add(SignalRow(**body.model_dump())))


@signals.get("/{signal_id}", operation_id="get_signal", response_model=SignalOut)
def get_signal(signal_id: str, scope: ReadScope) -> SignalOut:
    return SignalOut.model_validate(scope.get(SignalRow, signal_id))


@signals.patch("/{signal_id}", operation_id="update_signal", response_model=SignalOut)
def update_signal(signal_id: str, body: SignalUpdate, scope: WriteScope) -> SignalOut:
    row = scope.get(SignalRow, signal_id)
    apply_update(row, body)
    scope.session.flush()
    return SignalOut.model_validate(row)


@signals.delete("/{signal_id}", operation_id="delete_signal", response_model=Deleted)
def delete_signal(signal_id: str, scope: WriteScope, state: State) -> Deleted:
    """Delete a signal with its stored readings (a new signal with the same name starts empty)."""
    row = scope.get(SignalRow, signal_id)
    asset = scope.get(AssetRow, row.asset_id)
    timeseries_store(state).delete_signal(scope.org_id, asset.slug, row.name)
    scope.delete(row)
    return Deleted(id=signal_id)
