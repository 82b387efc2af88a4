"""Your organisation, and the data center's platform view (operator only): companies, quotas, usage."""

from __future__ import annotations

from fastapi import APIRouter

from axhub.api import password_policy
from axhub.api.deps import DbSession, Operator, Reader
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.accounts import OrgCreate, OrgOut, OrgUsage, QuotaUpdate
from axhub.api.security import hash_password
from axhub.core.domain import Role
from axhub.core.errors import NotFoundError
from axhub.core.timeutil import parse_timezone
from axhub.store import accounts_repo, platform
from axhub.store.models import UserRow
from axhub.store.scoped import OrgScope

router = APIRouter(tags=["organisations"], responses=ERROR_RESPONSES)


@router.get("/org", operation_id="get_current_org", response_model=OrgOut)
def get_current_org(principal: Reader, session: DbSession) -> OrgOut:
    """The caller's organisation, with its compute quota."""
    org = accounts_repo.org_by_id(session, principal.org_id)
    assert org is not None
    accounts_repo.share_code_of(session, org)
    return OrgOut.model_validate(org)


@router.get("/platform/orgs", operation_id="list_orgs", response_model=list[OrgOut])
def list_orgs(_: Operator, session: DbSession) -> list[OrgOut]:
    """Every organisation on the platform (operator only)."""
    return [OrgOut.model_validate(o) for o in platform.list_orgs(session)]


@router.post("/platform/orgs", operation_id="create_org", response_model=OrgOut, status_code=201)
def create_org(body: OrgCreate, _: Operator, session: DbSession) -> OrgOut:
    """Register a company with its first administrator (operator only)."""
    password_policy.check(body.admin_password, body.admin_email, "admin_password")
    org = platform.create_org(session, body.name, body.slug)
    org.max_concurrent_jobs = body.max_concurrent_jobs
    org.compute_class = body.compute_class
    parse_timezone(body.timezone)
    org.timezone = body.timezone
    OrgScope(session, org.id).add(
        UserRow(
            email=body.admin_email.lower(),
            name="",
            password_hash=hash_password(body.admin_password),
            role=Role.ADMIN.value,
        )
    )
    return OrgOut.model_validate(org)


@router.patch("/platform/orgs/{org_id}/quota", operation_id="update_org_quota", response_model=OrgOut)
def update_quota(org_id: str, body: QuotaUpdate, _: Operator, session: DbSession) -> OrgOut:
    """Change a company's concurrent-job quota or compute class (operator only)."""
    org = accounts_repo.org_by_id(session, org_id)
    if org is None:
        raise NotFoundError(f"organisation '{org_id}' not found")
    if body.max_concurrent_jobs is not None:
        org.max_concurrent_jobs = body.max_concurrent_jobs
    if body.compute_class is not None:
        org.compute_class = body.compute_class
    session.flush()
    return OrgOut.model_validate(org)


@router.get("/platform/usage", operation_id="get_platform_usage", response_model=list[OrgUsage])
def usage(_: Operator, session: DbSession) -> list[OrgUsage]:
    """Users, assets and jobs per organisation (operator only)."""
    slugs = {o.id: o.slug for o in platform.list_orgs(session)}
    return [
        OrgUsage(org_id=org_id, slug=slugs.get(org_id, ""), **counts)
        for org_id, counts in platform.usage_by_org(session).items()
    ]
