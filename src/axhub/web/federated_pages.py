"""The collaboration page: members, their site policies, rounds with metrics, each member's
local-only vs joint figure, contributions and privacy budget spent. Only members (and the lead)
see a collaboration; anyone else gets the same 404 as a missing id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.federated import collab
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


@router.get("/federated", response_class=HTMLResponse)
def federated_page(request: Request, principal: PagePrincipal, c: str = "") -> HTMLResponse:
    with _Page(request, principal) as page:
        mine = collab.for_org(page.session, principal.org_id)
        chosen = c or (mine[0].id if mine else "")
        view = collab.overview(page.session, principal.org_id, chosen) if chosen else None
        return render(
            request,
            "federated.html",
            active="/federated",
            collaborations=mine,
            view=view,
            figures=_last_figures(view) if view else {},
            contribution=_contribution(view) if view else {},
            **page.ident,
        )
