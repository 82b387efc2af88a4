"""The dashboard's HTML pages (server-rendered Jinja2; small scripts add charts and live updates)."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from axhub.api.deps import Need, Principal, app_state
from axhub.api.errors import ApiError
from axhub.core.timeutil import utcnow
from axhub.store import accounts_repo
from axhub.store.models import OrganizationRow, SiteRow, UserRow
from axhub.store.platform import list_orgs, usage_by_org
from axhub.store.scoped import OrgScope
from axhub.web import views
from axhub.web.alert_text import alert_title
from axhub.web.i18n import LANG_COOKIE, LOCALES, Translator, locale_of, texts
from axhub.web.names import display_name
from axhub.web.series import data_extent
from axhub.web.session import (
    LOGIN_COOKIE,
    check_credentials,
    clear_session_cookies,
    end_session,
    page_principal,
    same_origin,
    set_session_cookies,
)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)

PagePrincipal = Annotated[Principal, Depends(page_principal)]

# Navigation entries: (path, i18n key, who sees it).
NAV: list[tuple[str, str, Need]] = [
    ("/", "nav.overview", Need.READ),
    ("/plant", "nav.plant", Need.READ),
    ("/alerts", "nav.alerts", Need.READ),
    ("/inspection", "nav.inspection", Need.READ),
    ("/performance", "nav.performance", Need.READ),
    ("/process", "nav.process", Need.READ),
    ("/edge", "nav.edge", Need.READ),
    ("/data", "nav.data", Need.INGEST),
    ("/refused", "nav.refused", Need.READ),
    ("/models", "nav.models", Need.READ),
    ("/federated", "nav.federated", Need.READ),
    ("/jobs", "nav.jobs", Need.READ),
    ("/admin", "nav.admin", Need.ADMIN),
    ("/operator", "nav.operator", Need.OPERATOR),
    ("/operator/metering", "nav.metering", Need.OPERATOR),
    ("/complex", "nav.complex", Need.OPERATOR),
]


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    locale = locale_of(request)
    t = Translator(locale)
    principal: Principal | None = getattr(request.state, "principal", None)
    client_texts = {k: v for k, v in texts(locale).items() if k.startswith("js.")}
    base = {
        "request": request,
        "t": t,
        "locale": locale,
        "locales": LOCALES,
        "principal": principal,
        "nav": [(p, k) for p, k, need in NAV if principal is not None and principal.allows(need)],
        "path": request.url.path,
        "client_texts": client_texts,
        "can_write": principal is not None and principal.allows(Need.WRITE),
        "dn": lambda row: display_name(row, locale),
        # An alert's title in this language: atitle(alert, asset_row, {signal id: SignalRow}).
        "atitle": lambda alert, asset, sigs=None: alert_title(
            alert,
            display_name(asset, locale) if asset is not None else str(alert.asset_id),
            {k: display_name(v, locale) for k, v in (sigs or {}).items()},
            t,
        ),
    }
    return TEMPLATES.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _identity(scope: OrgScope, principal: Principal) -> dict[str, Any]:
    org = accounts_repo.org_by_id(scope.session, principal.org_id)
    user = scope.find(UserRow, id=principal.user_id) if principal.user_id else None
    site = scope.list(SiteRow, order_by=SiteRow.name, limit=1)
    # A company without a site yet shows times in its own zone (Asia/Seoul for a Korean company).
    zone = site[0].timezone if site else getattr(org, "timezone", None) or "UTC"
    return {"org": org, "user": user, "site_tz": zone}


class _Page:
    """A read-only session and scope for one page render, closed afterwards."""

    def __init__(self, request: Request, principal: Principal) -> None:
        self._cm = app_state(request).db.session()
        self.principal = principal

    def __enter__(self) -> _Page:
        self.session: Session = self._cm.__enter__()
        self.scope = OrgScope(self.session, self.principal.org_id)
        self.ident = _identity(self.scope, self.principal)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


# ---------------------------------------------------------------------------- sign-in
def _login_page(request: Request, next: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    # Login CSRF: the form carries a token that must match a SameSite=Strict cookie set with it,
    # so another site cannot sign a victim's browser into the attacker's account.
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        next=_safe_next(next),
        login_token=token,
        company_required=app_state(request).settings.signin_requires_company,
        **context,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        secure=bool(app_state(request).secure_cookies),
        samesite="strict",
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(request, next, error=None)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/",
    login_token: Annotated[str, Form(max_length=100)] = "",
    company: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie, login_token):
        return _login_page(request, next, status_code=403, error="service.login.stale", email=email)
    address = request.client.host if request.client else None
    try:
        who = check_credentials(app_state(request), email, password, address, company.strip() or None)
    except ApiError as exc:  # throttled
        wait = (exc.details or {}).get("retry_after_s", 60)
        page = _login_page(
            request, next, status_code=429, error="service.login.throttled", email=email, wait=wait
        )
        page.headers["Retry-After"] = str(wait)
        return page
    if who is None:
        return _login_page(request, next, status_code=401, error="login.failed", email=email, company=company)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookies(request, response, who.user_id, who.session_version)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    if same_origin(request):
        end_session(request)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookies(response)
    return response


@router.get("/lang/{code}")
def switch_language(code: str, next: str = "/") -> Response:
    """Remember the chosen language for a year, then go back to the page."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LOCALES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax", path="/")
    return response


# ---------------------------------------------------------------------------- pages
@router.get("/", response_class=HTMLResponse)
def overview(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        from axhub.web.performance import oee_card

        data = views.plant_overview(page.scope)
        oee = oee_card(page.scope, app_state(request))
        return render(request, "overview.html", active="/", oee=oee, **page.ident, **data)


@router.get("/assets/{slug}", response_class=HTMLResponse)
def asset_page(
    request: Request, slug: str, principal: PagePrincipal, signals: str = "", start: str = "", end: str = ""
) -> HTMLResponse:
    """A machine's page; ``?signals=a,b&start=..&end=..`` opens it on those signals and that window
    (the links from an alert do)."""
    with _Page(request, principal) as page:
        data = views.asset_detail(page.scope, slug)
        settings = app_state(request).settings
        extent = data_extent(settings, principal.org_id, slug)
        if extent is not None:
            w_end = views.shifted(extent[1], timedelta(seconds=1))
            w_start = max(extent[0], views.shifted(w_end, -timedelta(hours=24)))
        else:
            w_start, w_end = views.recent_window(data["alerts"], utcnow())
        asked = views.parse_window(start, end)
        if asked is not None:
            w_start, w_end = asked
        return render(
            request,
            "asset.html",
            active="/",
            window={"start": w_start.isoformat(), "end": w_end.isoformat()},
            history_start=extent[0].isoformat() if extent else "",
            focus=[s for s in signals.split(",") if s],
            can_learn=principal.allows(Need.WRITE),
            can_delete_series=principal.allows(Need.ADMIN),
            **page.ident,
            **data,
        )


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, principal: PagePrincipal, state: str = "open", severity: str = "", asset: str = ""
) -> HTMLResponse:
    state = state if state in {"open", "acknowledged", "all"} else "open"
    severity = severity if severity in {"", "info", "warning", "critical"} else ""
    with _Page(request, principal) as page:
        data = views.alert_list(page.scope, state=state, severity=severity, asset_slug=asset)
        return render(
            request,
            "alerts.html",
            active="/alerts",
            filters={"state": state, "severity": severity, "asset": asset},
            **page.ident,
            **data,
        )


@router.get("/inspection", response_class=HTMLResponse)
def inspection_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        data = views.inspection_view(page.scope)
        return render(request, "inspection.html", active="/inspection", **page.ident, **data)


@router.get("/data", response_class=HTMLResponse)
def data_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        from axhub.store.models import AssetRow, IngestRunRow

        assets = page.scope.list(AssetRow, order_by=AssetRow.name)
        runs = page.scope.list(IngestRunRow, order_by=IngestRunRow.started_at.desc(), limit=20)
        return render(
            request,
            "data.html",
            active="/data",
            assets=assets,
            runs=runs,
            can_ingest=principal.allows(Need.INGEST),
            **page.ident,
        )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        data = views.model_list(page.scope)
        return render(request, "models.html", active="/models", **page.ident, **data)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    with _Page(request, principal) as page:
        data = views.job_list(page.scope)
        return render(request, "jobs.html", active="/jobs", **page.ident, **data)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    if not principal.allows(Need.ADMIN):
        return render(request, "forbidden.html", status_code=403, active="/admin")
    with _Page(request, principal) as page:
        data = views.admin_view(page.scope)
        return render(request, "admin.html", active="/admin", **page.ident, **data)


@router.get("/operator", response_class=HTMLResponse)
def operator_page(request: Request, principal: PagePrincipal) -> HTMLResponse:
    if not principal.allows(Need.OPERATOR):
        return render(request, "forbidden.html", status_code=403, active="/operator")
    with _Page(request, principal) as page:
        # Cross-tenant by design: the data center's operator sees companies and their usage,
        # never their readings, images or models.
        orgs: list[OrganizationRow] = list(list_orgs(page.session))
        usage = usage_by_org(page.session)
        history = views.usage_over_time(page.session)
        return render(
            request,
            "operator.html",
            active="/operator",
            orgs=orgs,
            usage=usage,
            history=history,
            **page.ident,
        )


def login_url(next_path: str) -> str:
    return f"/login?next={quote(_safe_next(next_path))}"
