"""Running a collaboration in the hub: every member's client is its own process that reads
that member's readings through that member's ``OrgScope`` (nothing else is reachable), and
the hub records the rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from axhub.core.errors import AxHubError, NotFoundError
from axhub.core.ids import new_id
from axhub.federated import collab
from axhub.federated.client import MemberData
from axhub.federated.learner import FedTask
from axhub.store.models import FedCollaborationRow, FedMemberRow
from axhub.store.scoped import OrgScope

VALIDATION_FRACTION = 0.2


def task_for(row: FedCollaborationRow, **overrides: Any) -> FedTask:
    if row.family == "mspc":
        raise AxHubError(
            "an MSPC collaboration is fitted from pooled statistics, not in rounds (federated.stats)"
        )
    kind: Literal["regression", "classification"] = (
        "regression" if row.family == "rul_mlp" else "classification"
    )
    n_out = int(row.schema.get("n_classes", 1)) if kind == "classification" else 1
    scale = float(row.schema.get("target_scale", 1.0))
    return FedTask(
        kind=kind, n_features=len(row.schema["signals"]), n_outputs=n_out, target_scale=scale, **overrides
    )


def load_member_data(scope: OrgScope, collaboration_id: str, timeseries: Any) -> MemberData:
    """This member's rows, in the schema's column order, from its own store partition only."""
    membership = scope.find(FedMemberRow, collaboration_id=collaboration_id)
    if membership is None or membership.status != "active":
        raise NotFoundError(f"collaboration '{collaboration_id}' not found")
    collab_row = scope.session.get(FedCollaborationRow, collaboration_id)
    assert collab_row is not None
    asset = scope.asset_by_slug(str(membership.signal_map["asset"]))  # the member's own asset or NotFound
    mapping: dict[str, str] = membership.signal_map["signals"]
    features = list(collab_row.schema["signals"])
    target = collab_row.schema.get("target")
    wanted = [mapping[s] for s in features] + ([mapping[target]] if target else [])
    frame = timeseries.query_wide(scope.org_id, asset.slug, wanted).dropna()
    if frame.empty:
        raise AxHubError(f"asset '{asset.slug}' has no complete rows for the mapped signals")
    x = frame[[mapping[s] for s in features]].to_numpy(np.float64)
    # Each site standardises with its own statistics: site offsets (another plant, another
    # sensor mounting) do not become a signal, and no statistic has to leave the site for it.
    x = ((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-9)).astype(np.float32)
    y = frame[mapping[target]].to_numpy(np.float64) if target else np.zeros(len(frame))
    cut = int(len(x) * (1 - VALIDATION_FRACTION))
    return MemberData(x[:cut], y[:cut], x[cut:], y[cut:])


def run(
    session_factory: Any,
    collaboration_id: str,
    *,
    rounds: int,
    workdir: Path,
    by_org: str,
    launch_options: dict[str, Any] | None = None,
    record: bool = True,
    run_id: str = "",
    **task_overrides: Any,
) -> dict[str, Any]:
    """One federated run among the active members; ``by_org`` must be the lead. With
    ``record=False`` the caller records the rounds (a job does, in its completion transaction)."""
    from axhub.federated.policy import SitePolicy
    from axhub.federated.process import launch
    from axhub.federated.superlink import launch_secagg

    with session_factory() as session:
        row = collab.visible(session, by_org, collaboration_id)
        if row.lead_org_id != by_org:
            from axhub.core.errors import PermissionDeniedError

            raise PermissionDeniedError("only the lead company starts a run")
        task = task_for(row, **task_overrides)
        members: list[dict[str, Any]] = [
            {
                "member": m.org_id,
                "task": task.to_json(),
                "policy": m.policy,
                "data": {"hub": {"org_id": m.org_id, "collaboration_id": collaboration_id}},
            }
            for m in collab.active_members(session, collaboration_id)
        ]
    if len(members) < 2:
        raise AxHubError("a federated run needs at least two active members")
    run_id = run_id or new_id("run")
    # A member that requires secure aggregation would refuse the plain deployment: such a run
    # goes through SecAgg+ on a SuperLink with one SuperNode per member instead.
    secure = any(SitePolicy.parse(m["policy"]).secure_aggregation_required for m in members)
    launcher = launch_secagg if secure else launch
    summary = launcher(
        task.to_json(), members, rounds=rounds, workdir=workdir / run_id, **(launch_options or {})
    )
    summary.pop("joint", None)  # the joint model stays in the run folder (members only)
    summary["run_id"] = run_id
    if record:
        with session_factory() as session:
            record_summary(session, collaboration_id, summary)
    return summary


def record_summary(session: Any, collaboration_id: str, summary: dict[str, Any]) -> None:
    """The run's rounds and each member's ε (member labels are org ids in the hub)."""
    labels = {str(m): str(m) for m in summary.get("members_sent", {})}
    collab.record_run(session, collaboration_id, str(summary["run_id"]), summary, labels)


def joint_model_path(workdir: Path, run_id: str) -> Path:
    """Where a hub run leaves its joint parameters (read back with ``allow_pickle=False``)."""
    return workdir / run_id / "out" / "joint.npz"
