"""Pages for a factory's own data: the plant structure (sites, lines, machines, signals).

Writes go through the API's own routes (``/api/v1/sites``, ``/assets``, ``/signals``) from the
page's script, so the dashboard can do nothing the API would refuse.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axhub.api.deps import Need
from axhub.web import views
from axhub.web.i18n import locale_of
from axhub.web.pages import PagePrincipal, _Page, render

router = APIRouter(include_in_schema=False)

# The zones a Korean factory and its partners abroad most often need; any IANA zone is accepted.
TIMEZONES = (
    "Asia/Seoul",
    "UTC",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Ho_Chi_Minh",
    "Europe/Berlin",
    "America/New_York",
)


@router.get("/plant", response_class=HTMLResponse)
def plant_page(request: Request, principal: PagePrincipal, created: str = "") -> HTMLResponse:
    with _Page(request, principal) as page:
        data = views.plant_structure(page.scope)
        zones = TIMEZONES if page.ident["site_tz"] in TIMEZONES else (page.ident["site_tz"], *TIMEZONES)
        return render(
            request,
            "plant.html",
            active="/plant",
            can_edit=principal.allows(Need.WRITE),
            timezones=zones,
            created=created,
            **page.ident,
            **data,
        )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: str, principal: PagePrincipal) -> HTMLResponse:
    """One alert: the chart at that moment with its signals ticked, each signal's reading against
    its normal range, severity, notes, acknowledge and resolve."""
    with _Page(request, principal) as page:
        data = views.alert_detail(page.scope, alert_id)
        tz = data["site"].timezone if data["site"] else page.ident["site_tz"]
        return render(request, "alert.html", active="/alerts", tz=tz, **page.ident, **data)


@router.get("/refused", response_class=HTMLResponse)
def refused_page(request: Request, principal: PagePrincipal, source: str = "") -> HTMLResponse:
    """What was refused, per source: connection payloads (dead letters) and rows of files."""
    from axhub.api.deps import app_state
    from axhub.serve import refused

    settings = app_state(request).settings
    with _Page(request, principal) as page:
        summary = refused.summary(settings, page.scope)
        letters = list(refused.dead_letters(settings, principal.org_id, source or None))[-100:]
        letters.reverse()
        files = refused.file_rejects(page.scope, source or None, limit=20)
        return render(
            request,
            "refused.html",
            active="/refused",
            summary=summary,
            letters=letters,
            files=files,
            source=source,
            lang=locale_of(request),
            **page.ident,
        )
