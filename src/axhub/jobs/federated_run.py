"""The ``federated_run`` job: a collaboration's run in the hub, started from the dashboard or the
API by the lead company. Each member's client is its own process reading through that member's
``OrgScope`` (``federated.hub``); the job shows the rounds done as its progress, and the rounds
and ε spent are written in the job's completion transaction (a worker that lost its lease
records nothing). Jobs may import federated (same layer; federated never imports jobs).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from axhub.core.settings import Settings
from axhub.federated import hub
from axhub.jobs.context import JobContext
from axhub.jobs.handlers import Outcome
from axhub.jobs.spec import FederatedRunSpec


def runs_root(settings: Settings) -> Path:
    """Where hub runs keep their folders (the joint model stays there, for members only)."""
    return settings.home / "federated"


def federated_run(ctx: JobContext, spec: FederatedRunSpec) -> Outcome:
    shown = 0

    def tick(done: int, of: int) -> None:
        nonlocal shown
        if done > shown:  # rounds can pass between two ticks: report the latest count
            shown = done
            ctx.progress(0.05 + 0.9 * done / max(of, 1), f"round {done}/{of} done")
        ctx.check()  # a cancelled job ends the run; launch kills every process

    ctx.progress(0.02, f"starting the hub and one client per member ({spec.rounds} rounds)")
    summary = hub.run(
        ctx.db.session,
        spec.collaboration_id,
        rounds=spec.rounds,
        workdir=runs_root(ctx.settings),
        by_org=ctx.lease.org_id,
        launch_options={"on_tick": tick},
        record=False,
        # One folder per attempt: a retried job never reads what an earlier attempt left.
        run_id=f"run-{ctx.lease.job_id}-{ctx.lease.attempt}",
    )
    result = {
        "run_id": summary["run_id"],
        "rounds": len(summary["rounds"]),
        "stopped": summary.get("stopped"),
        "contribution": summary.get("contribution", {}),
    }

    def commit(session: Session) -> None:
        hub.record_summary(session, spec.collaboration_id, summary)

    return Outcome(result=result, on_commit=commit)
