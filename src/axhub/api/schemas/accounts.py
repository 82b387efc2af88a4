"""Organisations, users, API keys, sign-in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from axhub.api.schemas.common import In, Out

Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
TenantRole = Literal["admin", "engineer", "viewer", "approver"]
KeyScope = Literal["read", "write", "ingest", "admin"]


class LoginIn(In):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    company: str | None = Field(
        default=None,
        max_length=100,
        description="Company code (slug); needed only when the e-mail has accounts in several companies",
    )


class PasswordChange(In):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=10, max_length=1024)


class OrgOut(Out):
    id: str
    name: str
    slug: str
    max_concurrent_jobs: int
    compute_class: str
    created_at: datetime
    timezone: str = "Asia/Seoul"
    share_code: str | None = Field(
        default=None, description="What another company enters to share a model with this one"
    )


class OrgCreate(In):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    admin_email: Email
    admin_password: str = Field(min_length=10, max_length=1024)
    max_concurrent_jobs: int = Field(default=2, ge=0, le=1000)
    compute_class: Literal["cpu", "gpu"] = "cpu"
    # The company's zone; its sites and files default to it.
    timezone: str = Field(default="Asia/Seoul", max_length=64)


class QuotaUpdate(In):
    max_concurrent_jobs: int | None = Field(default=None, ge=0, le=1000)
    compute_class: Literal["cpu", "gpu"] | None = None


class OrgUsage(Out):
    org_id: str
    slug: str
    users: int
    assets: int
    jobs: int


class UserOut(Out):
    id: str
    email: str
    name: str
    role: str
    locale: str
    is_active: bool
    created_at: datetime


class MeOut(Out):
    user: UserOut | None
    org: OrgOut
    role: str
    via: str
    scopes: list[str]
    csrf_token: str | None = None


class UserCreate(In):
    email: Email
    name: str = Field(default="", max_length=200)
    password: str = Field(min_length=10, max_length=1024)
    role: TenantRole = "viewer"
    locale: Literal["ko", "en"] = "ko"


class UserUpdate(In):
    name: str | None = Field(default=None, max_length=200)
    role: TenantRole | None = None
    locale: Literal["ko", "en"] | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=1024)


class KeyOut(Out):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    role: str
    user_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _read_only() -> list[KeyScope]:
    return ["read"]


class KeyCreate(In):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[KeyScope] = Field(default_factory=_read_only, min_length=1, max_length=4)
    role: TenantRole | None = Field(default=None, description="Defaults to your role; never above it")


class KeyCreated(KeyOut):
    key: str = Field(description="The secret; shown once, store it now")
