"""Process optimisation as a service: batch records, recommendations, approval and write-back.

The rules that make it safe to let a model move a machine:

* nothing is written without an approval by a person whose role allows it
  (``core.domain.APPROVER_ROLES``; the API lets no key approve);
* the approval is on record (status ``approved``, who, when) before anything is written, and
  it is a compare-and-set: one recommendation is written at most once;
* at write time the limits are checked again against what the machine holds *now* (read
  from it), because setpoints and limits may have changed since the recommendation;
* after the write the setpoints are read back; the audit row holds before, requested, read
  back, who and when, and whether the read-back matched;
* rollback writes the setpoints that were in place before the last successful write (again
  with a read-back and an audit row); a dry run reads the machine and says what would be
  written and which limits would refuse it, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from axhub.core.domain import APPROVER_ROLES
from axhub.core.errors import AxHubError, ConflictError, PermissionDeniedError
from axhub.core.timeutil import utcnow
from axhub.ml.process.limits import ProcessLimits
from axhub.ml.process.model import BatchOutcome, OutcomeModel
from axhub.ml.process.recommend import Objective, pareto_front, recommend
from axhub.serve.setpoints import SetpointTarget, matches, read_setpoints, write_setpoints
from axhub.store.db import Database
from axhub.store.models import (
    AssetRow,
    ProcessAuditRow,
    ProcessBatchRow,
    ProcessCellRow,
    ProcessRecommendationRow,
)
from axhub.store.scoped import OrgScope

MIN_BATCHES = 3


def _audit_json(row: ProcessAuditRow) -> dict[str, Any]:
    return {
        "id": row.id, "recommendation_id": row.recommendation_id, "action": row.action,
        "actor": row.actor, "at": row.at.isoformat(), "before": row.before,
        "requested": row.requested, "read_back": row.read_back, "ok": row.ok,
        "message": row.message,
    }  # fmt: skip


def _rec_json(row: ProcessRecommendationRow) -> dict[str, Any]:
    return {
        "id": row.id, "cell_id": row.cell_id, "status": row.status, "settings": row.settings,
        "current": row.current, "predicted": row.predicted, "created_by": row.created_by,
        "created_at": row.created_at.isoformat(), "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
    }  # fmt: skip


def _require_approver(role: str) -> None:
    if role not in APPROVER_ROLES:
        raise PermissionDeniedError(
            "only an approver (or an administrator) may approve, reject or roll back setpoints"
        )


class ProcessService:
    """One organisation's process cells (every query through ``OrgScope``)."""

    def __init__(self, db: Database, org_id: str) -> None:
        self.db = db
        self.org_id = org_id

    # --------------------------------------------------------------------- cells
    def create_cell(
        self,
        name: str,
        limits: ProcessLimits,
        target: SetpointTarget,
        *,
        context_names: Sequence[str] = (),
        asset_id: str | None = None,
    ) -> str:
        missing = set(limits.names) - set(target.names)
        if missing:
            raise AxHubError(f"no machine address for setpoint(s) {sorted(missing)}")
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            if asset_id is not None:
                scope.get(AssetRow, asset_id)  # the caller's own machine, or 404
            if scope.find(ProcessCellRow, name=name) is not None:
                raise ConflictError(f"process cell '{name}' already exists")
            row = scope.add(
                ProcessCellRow(
                    name=name,
                    asset_id=asset_id,
                    limits=limits.to_json(),
                    target=target.to_json(),
                    context_names=list(context_names),
                )
            )
            return row.id

    def _cell(self, scope: OrgScope, cell_id: str) -> tuple[ProcessCellRow, ProcessLimits, SetpointTarget]:
        cell = scope.get(ProcessCellRow, cell_id)
        return cell, ProcessLimits.from_json(cell.limits), SetpointTarget.from_json(cell.target)

    def cells(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = OrgScope(s, self.org_id).list(ProcessCellRow, order_by=ProcessCellRow.name)
            return [
                {"id": r.id, "name": r.name, "limits": r.limits, "context_names": r.context_names}
                for r in rows
            ]

    # ------------------------------------------------------------------- batches
    def record_batches(self, cell_id: str, records: Sequence[Mapping[str, Any]], readings: Any = None) -> int:
        """Store batch records (idempotent on ``batch_key``); returns how many were new.

        With ``readings`` (the time-series store) and a machine on the cell, each record with
        a start and an end gets features of the machine's signals during its cycle in its
        context (``<signal>.mean``, ``.max``, ``.std``): name them in the cell's
        ``context_names`` and the model learns from them.
        """
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            cell, limits, _ = self._cell(scope, cell_id)
            asset = scope.get(AssetRow, cell.asset_id).slug if cell.asset_id else None
            if readings is not None and asset is not None:
                records = [_with_window_features(readings, self.org_id, asset, r) for r in records]
            added = 0
            for i, rec in enumerate(records):
                key = str(rec.get("batch_key", "")).strip()
                settings = {
                    n: float(rec["settings"][n]) for n in limits.names if n in rec.get("settings", {})
                }
                n_parts, n_passed = int(rec.get("n_parts", 0)), int(rec.get("n_passed", 0))
                if not key or len(settings) != len(limits.names) or not 0 <= n_passed <= n_parts:
                    raise AxHubError(
                        f"batch record {i + 1}: needs batch_key, every setpoint "
                        f"({', '.join(limits.names)}) and 0 <= n_passed <= n_parts"
                    )
                if scope.find(ProcessBatchRow, cell_id=cell_id, batch_key=key) is not None:
                    continue
                scope.add(
                    ProcessBatchRow(
                        cell_id=cell_id,
                        batch_key=key,
                        lot=str(rec.get("lot", "")),
                        settings=settings,
                        context=dict(rec.get("context", {})),
                        metrics=dict(rec.get("metrics", {})),
                        defects=dict(rec.get("defects", {})),
                        n_parts=n_parts,
                        n_passed=n_passed,
                        started_at=_when(rec.get("started_at")),
                        finished_at=_when(rec.get("finished_at")),
                    )
                )
                added += 1
            return added

    def record_file(
        self, cell_id: str, path: Path, label: str, timezone: str | None = None, readings: Any = None
    ) -> int:
        """Batch or part records from a file (Korean or English headers, CP949, ``.xlsx``)."""
        from axhub.ingest.process_records import read_batch_records

        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            cell, limits, _ = self._cell(scope, cell_id)
            context_names, zone = list(cell.context_names), timezone or scope.org_timezone()
        records = read_batch_records(path, label, limits.names, context_names=context_names, timezone=zone)
        return self.record_batches(cell_id, records, readings)

    def outcomes(self, cell_id: str) -> list[BatchOutcome]:
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            scope.get(ProcessCellRow, cell_id)
            rows = scope.list(ProcessBatchRow, order_by=ProcessBatchRow.created_at)
            return [
                BatchOutcome(dict(r.settings), r.n_parts, r.n_passed, r.lot, dict(r.context), dict(r.metrics))
                for r in rows
                if r.cell_id == cell_id
            ]

    # ----------------------------------------------------------- recommendations
    async def propose(
        self,
        cell_id: str,
        actor: str,
        *,
        lot: str = "",
        context: Mapping[str, float] | None = None,
        objective: Objective | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Learn from the batches, read the machine, and store a recommendation to approve."""
        with self.db.session() as s:
            cell, limits, target = self._cell(OrgScope(s, self.org_id), cell_id)
            context_names = list(cell.context_names)
        batches = self.outcomes(cell_id)
        if len(batches) < MIN_BATCHES:
            raise AxHubError(
                f"{len(batches)} batch record(s): at least {MIN_BATCHES} are needed before a recommendation"
            )
        current = await read_setpoints(target)
        model = OutcomeModel(limits, context_names=context_names, seed=seed).fit(batches)
        # Metrics every batch reports (cycle time, energy, ...) get their own models: the
        # weighted objective may use them, and the Pareto front shows what yield costs.
        shared = set.intersection(*(set(b.metrics) for b in batches))
        metric_models = {
            m: OutcomeModel(limits, target=m, context_names=context_names, seed=seed).fit(batches)
            for m in sorted(shared)
        }
        rec = recommend(
            model, limits, current, lot=lot, context=context, objective=objective,
            metric_models=metric_models, seed=seed,
        )  # fmt: skip
        predicted = rec.to_json()
        predicted["partial_dependence"] = {n: model.partial_dependence(n, 11) for n in limits.names}
        predicted["lot"] = lot
        if metric_models:
            front = pareto_front(
                model, metric_models, limits, current, lot=lot, context=context, trials=80, seed=seed
            )
            predicted["pareto"] = front[:40]
        with self.db.session() as s:
            row = OrgScope(s, self.org_id).add(
                ProcessRecommendationRow(
                    cell_id=cell_id,
                    settings=rec.settings,
                    current=rec.current,
                    predicted=predicted,
                    created_by=actor,
                )
            )
            return _rec_json(row)

    def recommendations(self, cell_id: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            scope.get(ProcessCellRow, cell_id)
            rows = scope.list(ProcessRecommendationRow, order_by=ProcessRecommendationRow.created_at.desc())
            return [_rec_json(r) for r in rows if r.cell_id == cell_id]

    def audit(self, cell_id: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            scope.get(ProcessCellRow, cell_id)
            rows = scope.list(ProcessAuditRow, order_by=ProcessAuditRow.at.desc())
            return [_audit_json(r) for r in rows if r.cell_id == cell_id]

    def _log(
        self, cell_id: str, rec_id: str | None, action: str, actor: str, **fields: Any
    ) -> dict[str, Any]:
        with self.db.session() as s:
            row = OrgScope(s, self.org_id).add(
                ProcessAuditRow(
                    cell_id=cell_id, recommendation_id=rec_id, action=action, actor=actor, **fields
                )
            )
            return _audit_json(row)

    def _check(
        self, cell_id: str, limits: ProcessLimits, settings: Mapping[str, float], current: Mapping[str, float]
    ) -> list[str]:
        validated = [b.settings for b in self.outcomes(cell_id)]
        return limits.violations(settings, current, validated)

    async def dry_run(self, rec_id: str, actor: str) -> dict[str, Any]:
        """What approving would write, from the machine's setpoints now; writes nothing."""
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            rec = scope.get(ProcessRecommendationRow, rec_id)
            cell_id, settings = rec.cell_id, dict(rec.settings)
            _, limits, target = self._cell(scope, cell_id)
        current = await read_setpoints(target)
        problems = self._check(cell_id, limits, settings, current)
        entry = self._log(
            cell_id, rec_id, "dry_run", actor, before=current, requested=settings, ok=not problems,
            message="; ".join(problems) or "would write",
        )  # fmt: skip
        return {**entry, "violations": problems}

    async def approve(self, rec_id: str, actor: str, role: str) -> dict[str, Any]:
        """Approve and write: re-check limits on the machine's values now, write, read back."""
        _require_approver(role)
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            rec = scope.get(ProcessRecommendationRow, rec_id)
            cell_id, settings = rec.cell_id, dict(rec.settings)
            _, limits, target = self._cell(scope, cell_id)
            claimed = s.execute(
                update(ProcessRecommendationRow)
                .where(
                    ProcessRecommendationRow.id == rec_id,
                    ProcessRecommendationRow.org_id == self.org_id,
                    ProcessRecommendationRow.status == "proposed",
                )
                .values(status="approved", decided_by=actor, decided_at=utcnow())
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(f"recommendation '{rec_id}' is '{rec.status}', not awaiting approval")
        # The approval is on record before the machine is touched.
        try:
            current = await read_setpoints(target)
        except AxHubError as exc:
            return self._finish(rec_id, cell_id, actor, "failed", {}, settings, {}, False, str(exc))
        problems = self._check(cell_id, limits, settings, current)
        if problems:
            return self._finish(
                rec_id, cell_id, actor, "refused", current, settings, {}, False,
                "limits at write time: " + "; ".join(problems),
            )  # fmt: skip
        try:
            read_back = await write_setpoints(target, settings)
        except AxHubError as exc:
            # Some setpoints may have been written before the failure: record what it holds now.
            try:
                holds = await read_setpoints(target)
            except AxHubError:
                holds = {}
            return self._finish(rec_id, cell_id, actor, "failed", current, settings, holds, False, str(exc))
        ok = matches(settings, read_back)
        return self._finish(
            rec_id, cell_id, actor, "written" if ok else "failed", current, settings, read_back, ok,
            "written and read back" if ok else "read-back differs from what was written",
        )  # fmt: skip

    def _finish(
        self, rec_id: str, cell_id: str, actor: str, status: str, before: Mapping[str, float],
        requested: Mapping[str, float], read_back: Mapping[str, float], ok: bool, message: str,
    ) -> dict[str, Any]:  # fmt: skip
        with self.db.session() as s:
            OrgScope(s, self.org_id).get(ProcessRecommendationRow, rec_id).status = status
        return self._log(
            cell_id, rec_id, "write", actor, before=dict(before), requested=dict(requested),
            read_back=dict(read_back), ok=ok, message=message,
        )  # fmt: skip

    def reject(self, rec_id: str, actor: str, role: str, reason: str = "") -> dict[str, Any]:
        _require_approver(role)
        with self.db.session() as s:
            rec = OrgScope(s, self.org_id).get(ProcessRecommendationRow, rec_id)
            if rec.status != "proposed":
                raise ConflictError(f"recommendation '{rec_id}' is '{rec.status}', not awaiting approval")
            rec.status, rec.decided_by, rec.decided_at = "rejected", actor, utcnow()
            cell_id, settings = rec.cell_id, dict(rec.settings)
        return self._log(cell_id, rec_id, "reject", actor, requested=settings, ok=True, message=reason[:2000])

    async def rollback(self, cell_id: str, actor: str, role: str) -> dict[str, Any]:
        """Write back the setpoints in place before the last successful write."""
        _require_approver(role)
        with self.db.session() as s:
            scope = OrgScope(s, self.org_id)
            _, limits, target = self._cell(scope, cell_id)
            last = next(
                (
                    r
                    for r in scope.list(ProcessAuditRow, order_by=ProcessAuditRow.at.desc())
                    if r.cell_id == cell_id and r.action in ("write", "rollback") and r.ok
                ),
                None,
            )
            if last is None:
                raise ConflictError("nothing to roll back: no setpoints were written to this cell")
            previous, last_id = dict(last.before), last.recommendation_id
        current = await read_setpoints(target)
        # Going back to settings the cell ran before: bounds and forbidden regions still apply.
        problems = limits.violations(previous)
        if problems:
            return self._log(
                cell_id, last_id, "rollback", actor, before=current, requested=previous, ok=False,
                message="limits at write time: " + "; ".join(problems),
            )  # fmt: skip
        read_back = await write_setpoints(target, previous)
        ok = matches(previous, read_back)
        if ok and last_id:
            with self.db.session() as s:
                rec = OrgScope(s, self.org_id).find(ProcessRecommendationRow, id=last_id)
                if rec is not None and rec.status == "written":
                    rec.status = "rolled_back"
        return self._log(
            cell_id, last_id, "rollback", actor, before=current, requested=previous,
            read_back=read_back, ok=ok, message="rolled back and read back" if ok else "read-back differs",
        )  # fmt: skip


def window_features(
    readings: Any, org_id: str, asset: str, start: datetime, end: datetime
) -> dict[str, float]:
    """Mean, maximum and spread of every signal of ``asset`` in [start, end)."""
    frame = readings.query(org_id, asset, None, start, end)
    features: dict[str, float] = {}
    if frame.empty:
        return features
    for signal, values in frame.groupby("signal")["value"]:
        features[f"{signal}.mean"] = float(values.mean())
        features[f"{signal}.max"] = float(values.max())
        features[f"{signal}.std"] = float(values.std(ddof=0))
    return features


def _with_window_features(readings: Any, org_id: str, asset: str, rec: Mapping[str, Any]) -> dict[str, Any]:
    start, end = _when(rec.get("started_at")), _when(rec.get("finished_at"))
    if start is None or end is None or end <= start:
        return dict(rec)
    features = window_features(readings, org_id, asset, start, end)
    return {**rec, "context": {**features, **dict(rec.get("context", {}))}}


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    from datetime import datetime as dt

    try:
        parsed = dt.fromisoformat(str(value))
    except ValueError as exc:
        raise AxHubError(f"time '{str(value)[:40]}' is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise AxHubError(f"time '{value}' has no time zone (give +09:00 or Z)")
    return parsed
