"""The collaboration page: members, their site policies, rounds with metrics, each member's
local-only vs joint figure, contributions and privacy budget spent. Only members (and the lead)
see a collaboration; anyone else gets the same 404 as a missing id.

Admins act here too (``static/federated.js`` calls the API with the session's CSRF token):
create, invite by share code, accept with a signal mapping and site policy, change the policy,
leave, consent to share, start a run (a job; its progress is shown live) and download the joint
model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import Need
from axhub.federated import collab
from axhub.federated.policy import KNOWN_METRICS
from axhub.store import accounts_repo
from axhub.store.models import AssetRow, JobRow, SignalRow
from axhub.store.scoped import OrgScope
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)


def _last_figures(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per member: the latest joint and local-only figures it chose to report."""
    out: dict[str, dict[str, Any]] = {}
    for r in view["rounds"]:
        for org, metrics in (r.get("evaluation") or {}).items():
            slot = out.setdefault(org, {})
            for key, value in metrics.items():
                if key.startswith(("joint_", "local_")):
                    slot[key] = value
    return out


def _contribution(view: dict[str, Any]) -> dict[str, float]:
    per: dict[str, list[float]] = {}
    for r in view["rounds"]:
        for org, value in (r.get("contribution") or {}).items():
            per.setdefault(org, []).append(float(value))
    return {org: sum(v) / len(v) for org, v in per.items()}


def _own_signals(scope: OrgScope) -> tuple[list[AssetRow], list[str]]:
    """This company's assets and signal names: what a member maps onto the shared schema."""
    assets = list(scope.list(AssetRow, order_by=AssetRow.slug))
    names = sorted({sig.name for sig in scope.list(SignalRow)})
    return assets, names


def _run_job(scope: OrgScope, collaboration_id: str) -> JobRow | None:
    """This company's latest run job of the collaboration (the lead's; members have none)."""
    jobs = scope.session.scalars(
        scope.select(JobRow).where(JobRow.kind == "federated_run").order_by(JobRow.created_at.desc())
    )
    return next((j for j in jobs if j.spec.get("collaboration_id") == collaboration_id), None)


@router.get("/federated", response_class=HTMLResponse)
def federated_page(request: Request, principal: PagePrincipal, c: str = "") -> HTMLResponse:
    with _Page(request, principal) as page:
        mine = collab.for_org(page.session, principal.org_id)
        chosen = c or (mine[0].id if mine else "")
        view = collab.overview(page.session, principal.org_id, chosen) if chosen else None
        me = next((m for m in view["members"] if m["you"]), None) if view else None
        org = page.ident["org"]
        return render(
            request,
            "federated.html",
            active="/federated",
            collaborations=mine,
            view=view,
            figures=_last_figures(view) if view else {},
            contribution=_contribution(view) if view else {},
            is_admin=principal.allows(Need.ADMIN),
            me=me,
            share_code=accounts_repo.share_code_of(page.session, org) if org is not None else "",
            own=_own_signals(page.scope),
            known_metrics=KNOWN_METRICS,
            families=collab.FAMILIES,
            run_job=_run_job(page.scope, view["id"]) if view else None,
            has_model=bool(view and collab.latest_run_id(page.session, view["id"])),
            **page.ident,
        )
