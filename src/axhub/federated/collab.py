"""Collaborations: a lead company creates one, invites members; each member accepts, maps its
own signals onto the shared schema and sets its site policy, or leaves.

A collaboration is visible only to its lead and its members (anyone else gets ``NotFoundError``,
the same as a missing id). A member's own row (mapping, policy) is changed only through that
member's ``OrgScope``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from axhub.core.errors import ConflictError, NotFoundError, PermissionDeniedError
from axhub.core.timeutil import utcnow
from axhub.federated.policy import FedInputError, SitePolicy
from axhub.store.models import FedCollaborationRow, FedMemberRow, FedRoundRow, OrganizationRow
from axhub.store.scoped import OrgScope

FAMILIES = ("rul_mlp", "diagnosis_mlp", "mspc")


def _schema(raw: dict[str, Any]) -> dict[str, Any]:
    signals = raw.get("signals")
    if not isinstance(signals, list) or not signals or not all(isinstance(s, str) and s for s in signals):
        raise FedInputError("schema: field 'signals' must be a non-empty list of signal names", "signals")
    target = raw.get("target")
    if target is not None and not isinstance(target, str):
        raise FedInputError("schema: field 'target' must be a signal name", "target")
    return {"signals": list(signals), "target": target}


def create(
    session: Session, lead_org: str, name: str, family: str, schema: dict[str, Any]
) -> FedCollaborationRow:
    if family not in FAMILIES:
        raise FedInputError(f"model family '{family}' is not one of {list(FAMILIES)}", "family")
    row = FedCollaborationRow(lead_org_id=lead_org, name=name, family=family, schema=_schema(schema))
    session.add(row)
    session.flush()
    # The lead is a member like any other: it still has to map its signals and set its policy.
    session.add(FedMemberRow(org_id=lead_org, collaboration_id=row.id))
    session.flush()
    return row


def visible(session: Session, org_id: str, collaboration_id: str) -> FedCollaborationRow:
    """The collaboration if ``org_id`` leads it or was invited to it; else NotFound."""
    row = session.get(FedCollaborationRow, collaboration_id)
    if row is not None and row.lead_org_id == org_id:
        return row
    member = session.scalars(
        select(FedMemberRow).where(
            FedMemberRow.collaboration_id == collaboration_id, FedMemberRow.org_id == org_id
        )
    ).first()
    if row is None or member is None:
        raise NotFoundError(f"collaboration '{collaboration_id}' not found")
    return row


def for_org(session: Session, org_id: str) -> list[FedCollaborationRow]:
    ids = select(FedMemberRow.collaboration_id).where(FedMemberRow.org_id == org_id)
    stmt = (
        select(FedCollaborationRow)
        .where(FedCollaborationRow.id.in_(ids))
        .order_by(FedCollaborationRow.created_at)
    )
    return list(session.scalars(stmt))


def invite(session: Session, lead_org: str, collaboration_id: str, member_org: str) -> FedMemberRow:
    collab = visible(session, lead_org, collaboration_id)
    if collab.lead_org_id != lead_org:
        raise PermissionDeniedError("only the lead company invites members")
    if session.get(OrganizationRow, member_org) is None:
        raise NotFoundError(f"organisation '{member_org}' not found")
    existing = session.scalars(
        select(FedMemberRow).where(
            FedMemberRow.collaboration_id == collaboration_id, FedMemberRow.org_id == member_org
        )
    ).first()
    if existing is not None and existing.status != "left":
        raise ConflictError("that company is already invited")
    if existing is not None:
        existing.status, existing.left_at = "invited", None
        return existing
    row = FedMemberRow(org_id=member_org, collaboration_id=collaboration_id)
    session.add(row)
    session.flush()
    return row


def _membership(scope: OrgScope, collaboration_id: str) -> FedMemberRow:
    row = scope.find(FedMemberRow, collaboration_id=collaboration_id)
    if row is None:
        raise NotFoundError(f"collaboration '{collaboration_id}' not found")
    return row


def accept(
    scope: OrgScope, collaboration_id: str, signal_map: dict[str, Any], policy: dict[str, Any]
) -> FedMemberRow:
    """The member's admin joins: its asset and own signal for every schema signal, and its policy."""
    row = _membership(scope, collaboration_id)
    collab = scope.session.get(FedCollaborationRow, collaboration_id)
    assert collab is not None  # the membership's foreign key
    asset = signal_map.get("asset")
    signals = signal_map.get("signals") or {}
    if not isinstance(asset, str) or not asset:
        raise FedInputError("signal mapping: field 'asset' must name one of your assets", "asset")
    scope.asset_by_slug(asset)  # one's own asset, or NotFound
    needed = list(collab.schema["signals"]) + (
        [collab.schema["target"]] if collab.schema.get("target") else []
    )
    missing = [s for s in needed if not isinstance(signals.get(s), str) or not signals.get(s)]
    if missing:
        raise FedInputError(f"signal mapping: no signal of yours for {missing}", "signals")
    row.signal_map = {"asset": asset, "signals": {s: signals[s] for s in needed}}
    row.policy = SitePolicy.parse(policy).model_dump()
    row.status, row.joined_at, row.left_at = "active", utcnow(), None
    return row


def set_policy(scope: OrgScope, collaboration_id: str, policy: dict[str, Any]) -> FedMemberRow:
    row = _membership(scope, collaboration_id)
    row.policy = SitePolicy.parse(policy).model_dump()
    return row


def leave(scope: OrgScope, collaboration_id: str) -> FedMemberRow:
    row = _membership(scope, collaboration_id)
    row.status, row.left_at = "left", utcnow()
    return row


def consent_to_share(scope: OrgScope, collaboration_id: str) -> FedCollaborationRow:
    """This member agrees to share the joint model beyond the members."""
    _membership(scope, collaboration_id)
    collab = scope.session.get(FedCollaborationRow, collaboration_id)
    assert collab is not None
    collab.share_consents = sorted({*collab.share_consents, scope.org_id})
    return collab


def may_share_outside(session: Session, collaboration_id: str) -> bool:
    """Only with every active member's explicit permission."""
    collab = session.get(FedCollaborationRow, collaboration_id)
    if collab is None:
        return False
    active = {m.org_id for m in active_members(session, collaboration_id)}
    return bool(active) and active <= set(collab.share_consents)


def active_members(session: Session, collaboration_id: str) -> list[FedMemberRow]:
    stmt = select(FedMemberRow).where(
        FedMemberRow.collaboration_id == collaboration_id, FedMemberRow.status == "active"
    )
    return list(session.scalars(stmt.order_by(FedMemberRow.invited_at, FedMemberRow.id)))


def record_run(
    session: Session, collaboration_id: str, run_id: str, summary: dict[str, Any], by_member: dict[str, str]
) -> None:
    """Rounds as reported (member labels → org ids), and each member's ε spent so far."""
    for rec in summary["rounds"]:
        session.add(
            FedRoundRow(collaboration_id=collaboration_id, run_id=run_id, round=int(rec["round"]), record=rec)
        )
    for label, sent in summary.get("members_sent", {}).items():
        org = by_member.get(label)
        eps = sent.get("epsilon_spent")
        if org is None or eps is None:
            continue
        row = session.scalars(
            select(FedMemberRow).where(
                FedMemberRow.collaboration_id == collaboration_id, FedMemberRow.org_id == org
            )
        ).first()
        if row is not None:
            row.epsilon_spent = float(row.epsilon_spent) + float(eps)


def overview(session: Session, org_id: str, collaboration_id: str) -> dict[str, Any]:
    """What every member may see: members, their policies, rounds, contributions, ε spent."""
    collab = visible(session, org_id, collaboration_id)
    names = dict(session.execute(select(OrganizationRow.id, OrganizationRow.name)).tuples().all())
    members = session.scalars(
        select(FedMemberRow).where(FedMemberRow.collaboration_id == collaboration_id)
    ).all()
    rounds = session.scalars(
        select(FedRoundRow)
        .where(FedRoundRow.collaboration_id == collaboration_id)
        .order_by(FedRoundRow.created_at, FedRoundRow.round)
    ).all()
    return {
        "id": collab.id,
        "name": collab.name,
        "family": collab.family,
        "schema": collab.schema,
        "lead": names.get(collab.lead_org_id, ""),
        "is_lead": collab.lead_org_id == org_id,
        "members": [
            {
                "org_id": m.org_id,
                "name": names.get(m.org_id, ""),
                "status": m.status,
                "policy": m.policy,
                "epsilon_spent": m.epsilon_spent,
                "you": m.org_id == org_id,
            }
            for m in members
        ],
        "rounds": [{"run_id": r.run_id, "round": r.round, **r.record} for r in rounds],
        "shared_outside": may_share_outside(session, collaboration_id),
    }


def latest_run_id(session: Session, collaboration_id: str) -> str | None:
    """The run whose rounds were recorded last (its joint model is the current one)."""
    row = session.scalars(
        select(FedRoundRow)
        .where(FedRoundRow.collaboration_id == collaboration_id)
        .order_by(FedRoundRow.created_at.desc(), FedRoundRow.round.desc())
    ).first()
    return row.run_id if row is not None else None
