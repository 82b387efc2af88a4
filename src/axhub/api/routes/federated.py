"""Federated collaborations: create, invite, accept (signal mapping + site policy), change the
policy, leave, and the overview every member sees. Runs start from ``axhub federated run``
(they launch one process per member)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from axhub.api.deps import AdminScope, ReadScope
from axhub.api.errors import ERROR_RESPONSES
from axhub.federated import collab

router = APIRouter(prefix="/federated", tags=["federated"], responses=ERROR_RESPONSES)


class CollaborationIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    family: str = "rul_mlp"
    signals: list[str] = Field(min_length=1, max_length=200)
    target: str | None = None


class InviteIn(BaseModel):
    org_id: str = Field(min_length=1, max_length=40)


class AcceptIn(BaseModel):
    asset: str = Field(min_length=1, max_length=200)
    signals: dict[str, str]
    policy: dict[str, Any] = Field(default_factory=dict)


class CollaborationOut(BaseModel):
    id: str
    name: str
    family: str


@router.get("", operation_id="list_collaborations", response_model=list[CollaborationOut])
def list_collaborations(scope: ReadScope) -> list[CollaborationOut]:
    """Collaborations this company leads or was invited to."""
    rows = collab.for_org(scope.session, scope.org_id)
    return [CollaborationOut(id=r.id, name=r.name, family=r.family) for r in rows]


@router.post("", operation_id="create_collaboration", response_model=CollaborationOut, status_code=201)
def create_collaboration(body: CollaborationIn, scope: AdminScope) -> CollaborationOut:
    row = collab.create(
        scope.session, scope.org_id, body.name, body.family, {"signals": body.signals, "target": body.target}
    )
    return CollaborationOut(id=row.id, name=row.name, family=row.family)


@router.get("/{collaboration_id}", operation_id="get_collaboration")
def get_collaboration(collaboration_id: str, scope: ReadScope) -> dict[str, Any]:
    """Members, their policies, ε spent, rounds with metrics and contributions."""
    return collab.overview(scope.session, scope.org_id, collaboration_id)


@router.post("/{collaboration_id}/invite", operation_id="invite_to_collaboration", status_code=204)
def invite_to_collaboration(collaboration_id: str, body: InviteIn, scope: AdminScope) -> None:
    collab.invite(scope.session, scope.org_id, collaboration_id, body.org_id)


@router.post("/{collaboration_id}/accept", operation_id="accept_collaboration", status_code=204)
def accept_collaboration(collaboration_id: str, body: AcceptIn, scope: AdminScope) -> None:
    collab.accept(scope, collaboration_id, {"asset": body.asset, "signals": body.signals}, body.policy)


@router.put("/{collaboration_id}/policy", operation_id="set_site_policy", status_code=204)
def set_site_policy(collaboration_id: str, policy: dict[str, Any], scope: AdminScope) -> None:
    collab.set_policy(scope, collaboration_id, policy)


@router.post("/{collaboration_id}/leave", operation_id="leave_collaboration", status_code=204)
def leave_collaboration(collaboration_id: str, scope: AdminScope) -> None:
    collab.leave(scope, collaboration_id)


@router.post(
    "/{collaboration_id}/share-consent", operation_id="consent_to_share_joint_model", status_code=204
)
def consent_to_share_joint_model(collaboration_id: str, scope: AdminScope) -> None:
    """This company agrees that the joint model may go beyond the members (all must agree)."""
    collab.consent_to_share(scope, collaboration_id)
