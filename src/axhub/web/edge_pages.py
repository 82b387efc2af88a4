"""The fleet page: edge devices (online, last sync, buffer depth, bundle and agent versions,
CPU/memory), enrolment tokens, revocation and signed rollouts to a device group."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import Need
from axhub.fleet.service import fleet
from axhub.store.models import EdgeRolloutRow, ModelVersionRow
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)


@router.get("/edge", response_class=HTMLResponse)
def edge_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        devices = fleet(page.scope)
        rollouts = sorted(page.scope.list(EdgeRolloutRow), key=lambda r: r.created_at, reverse=True)[:20]
        versions = sorted(page.scope.list(ModelVersionRow), key=lambda v: v.created_at, reverse=True)[:50]
        groups = sorted({d["group"] for d in devices})
        return render(
            request,
            "edge.html",
            active="/edge",
            devices=devices,
            rollouts=rollouts,
            versions=versions,
            groups=groups,
            can_write=principal.allows(Need.WRITE),
            can_admin=principal.allows(Need.ADMIN),
            **page.ident,
        )
