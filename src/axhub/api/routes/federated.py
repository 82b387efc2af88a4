"""Federated collaborations: create, invite, accept (signal mapping + site policy), change the
policy, leave, consent, the overview every member sees; a run in the hub as a job (one process
per member, each in its own scope) and the joint model's download (members only, or anyone once
every member consented)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from axhub.api.deps import Admin, AdminScope, ReadScope, State
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.schemas.work import JobOut
from axhub.core.errors import ConflictError, NotFoundError, PermissionDeniedError
from axhub.federated import collab
from axhub.federated.hub import joint_model_path, task_for
from axhub.federated.policy import FedInputError
from axhub.jobs.queue import JobQueue
from axhub.jobs.spec import FederatedRunSpec
from axhub.store import accounts_repo
from axhub.store.models import FedCollaborationRow, JobRow

router = APIRouter(prefix="/federated", tags=["federated"], responses=ERROR_RESPONSES)


class CollaborationIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    family: str = "rul_mlp"
    signals: list[str] = Field(min_length=1, max_length=200)
    target: str | None = None


class InviteIn(BaseModel):
    """The member company: its share code (shown to its admins under /org), or its id."""

    share_code: str | None = Field(default=None, max_length=40)
    org_id: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _one(self) -> InviteIn:
        if not (self.share_code or "").strip() and not self.org_id:
            raise FedInputError("name the company by its share code", "share_code")
        return self


class RunIn(BaseModel):
    rounds: int = Field(default=5, ge=1, le=100)


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
    member = body.org_id
    if body.share_code and body.share_code.strip():
        org = accounts_repo.org_by_share_code(scope.session, body.share_code)
        if org is None:
            raise NotFoundError("no company has that share code", hint="ask the company's admin for it")
        member = org.id
    assert member is not None  # the model's validator
    collab.invite(scope.session, scope.org_id, collaboration_id, member)


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


def _active_run(scope: Any, collaboration_id: str) -> JobRow | None:
    jobs = scope.session.scalars(
        scope.select(JobRow)
        .where(JobRow.kind == "federated_run", JobRow.state.in_(("queued", "running")))
        .order_by(JobRow.created_at.desc())
    )
    return next((j for j in jobs if j.spec.get("collaboration_id") == collaboration_id), None)


@router.post(
    "/{collaboration_id}/runs", operation_id="start_federated_run", response_model=JobOut, status_code=201
)
def start_federated_run(
    collaboration_id: str, body: RunIn, scope: AdminScope, principal: Admin, app: State
) -> JobOut:
    """Start a run in the hub as a job of the lead company (lead only): one client process per
    active member, each reading only its own organisation's data; the job's progress counts rounds."""
    row = collab.visible(scope.session, scope.org_id, collaboration_id)
    if row.lead_org_id != scope.org_id:
        raise PermissionDeniedError("only the lead company starts a run")
    task_for(row)  # an MSPC collaboration has no rounds: refuse now, not in a failed job
    if len(collab.active_members(scope.session, collaboration_id)) < 2:
        raise ConflictError("a federated run needs at least two companies taking part")
    if _active_run(scope, collaboration_id) is not None:
        raise ConflictError("a run of this collaboration is already queued or running")
    if app.queue is None:
        app.queue = JobQueue(app.db)
    job = app.queue.submit(
        scope,
        FederatedRunSpec(collaboration_id=collaboration_id, rounds=body.rounds),
        submitted_by=principal.actor,
    )
    scope.session.commit()  # visible to workers before we wake them
    if app.executor is not None:
        app.executor.notify()
    return JobOut.model_validate(job)


def _may_download(scope: Any, collaboration_id: str) -> FedCollaborationRow:
    """Members (and the lead) always; anyone else only once every member consented."""
    try:
        return collab.visible(scope.session, scope.org_id, collaboration_id)
    except NotFoundError:
        if not collab.may_share_outside(scope.session, collaboration_id):
            raise
        row = scope.session.get(FedCollaborationRow, collaboration_id)
        assert row is not None
        return row


@router.get(
    "/{collaboration_id}/model",
    operation_id="download_joint_model",
    responses={200: {"content": {"application/zip": {}}}},
    response_class=Response,
)
def download_joint_model(collaboration_id: str, scope: ReadScope, app: State) -> Response:
    """The latest run's joint model as a zip of ``model.onnx`` and ``model.json``."""
    from axhub.federated.export import MAX_BYTES, joint_bundle
    from axhub.jobs.federated_run import runs_root

    row = _may_download(scope, collaboration_id)
    run_id = collab.latest_run_id(scope.session, collaboration_id)
    if run_id is None:
        raise NotFoundError("no joint model yet: run the collaboration first")
    path = joint_model_path(runs_root(app.settings), run_id)
    if path.is_file() and path.stat().st_size > MAX_BYTES:
        raise ConflictError("the joint model is too large to download here")
    data = joint_bundle(row, path, run_id)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="joint-{run_id}.zip"'},
    )
