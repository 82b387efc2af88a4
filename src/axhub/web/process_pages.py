"""Dashboard page for process optimisation: recommendations with their predicted effect and
evidence, dry run, approval (approvers only), rollback, and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import Need, app_state
from axhub.serve.process import ProcessService
from axhub.store.models import UserRow
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)


@router.get("/process", response_class=HTMLResponse)
def process_page(request: Request, principal: PagePrincipal, cell: str = "") -> HTMLResponse:
    service = ProcessService(app_state(request).db, principal.org_id)
    cells = service.cells()
    selected = next((c for c in cells if c["name"] == cell), cells[0] if cells else None)
    recs: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    batches = 0
    if selected is not None:
        recs = service.recommendations(selected["id"])
        audit = service.audit(selected["id"])
        batches = len(service.outcomes(selected["id"]))
    with _Page(request, principal) as page:
        # The audit keeps user ids (stable); people read names.
        users = {u.id: u.name or u.email for u in page.scope.list(UserRow)}
        for entry in audit:
            entry["actor_name"] = users.get(entry["actor"], entry["actor"])
        return render(
            request,
            "process.html",
            active="/process",
            cells=cells,
            selected=selected,
            latest=recs[0] if recs else None,
            earlier=recs[1:10],
            audit=audit[:50],
            batches=batches,
            can_propose=principal.allows(Need.WRITE),
            can_approve=principal.allows(Need.APPROVE),
            **page.ident,
        )
