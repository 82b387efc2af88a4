"""Process optimisation: cells, batch records, recommendations, approval, write-back, audit.

Approving, rejecting and rolling back need ``Need.APPROVE`` (an approver or an administrator,
signed in: no API key can approve a write to a machine).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile

from axhub.api.deps import Need, Principal, Reader, State, UploadSlot, Writer, require, timeseries_store
from axhub.api.errors import ERROR_RESPONSES
from axhub.api.routes.files import read_table_upload
from axhub.api.schemas.process import BatchesIn, CellIn, DecisionIn, ProposeIn, Stored
from axhub.ml.process.limits import ProcessLimits
from axhub.ml.process.recommend import Objective
from axhub.serve.process import ProcessService
from axhub.serve.setpoints import SetpointTarget

router = APIRouter(prefix="/process", tags=["process"], responses=ERROR_RESPONSES)
Approver = Depends(require(Need.APPROVE))
Ingester = Depends(require(Need.INGEST))


def _service(state: Any, principal: Principal) -> ProcessService:
    return ProcessService(state.db, principal.org_id)


@router.get("/cells", operation_id="list_process_cells")
def list_cells(principal: Reader, state: State) -> list[dict[str, Any]]:
    return _service(state, principal).cells()


@router.post("/cells", operation_id="create_process_cell", status_code=201)
def create_cell(body: CellIn, principal: Writer, state: State) -> dict[str, str]:
    limits = ProcessLimits.from_json(body.limits)
    target = SetpointTarget.from_json(body.target)
    cell_id = _service(state, principal).create_cell(
        body.name, limits, target, context_names=body.context_names, asset_id=body.asset_id
    )
    return {"id": cell_id}


@router.post("/cells/{cell_id}/batches", operation_id="record_process_batches", response_model=Stored)
def record_batches(cell_id: str, body: BatchesIn, state: State, principal: Principal = Ingester) -> Stored:
    """Batch (or part) records; a batch_key already stored is skipped (safe to resend)."""
    added = _service(state, principal).record_batches(cell_id, [b.model_dump() for b in body.batches])
    return Stored(added=added)


@router.post("/cells/{cell_id}/batches/file", operation_id="upload_process_batches", response_model=Stored)
def upload_batches(
    cell_id: str,
    state: State,
    _slot: UploadSlot,
    file: Annotated[UploadFile, File(description="CSV (any encoding), .xlsx or Parquet")],
    principal: Principal = Ingester,
) -> Stored:
    """Batch or part records from a file: Korean or English headers, CP949, ``.xlsx``; a file
    with a bad value is refused whole, naming every row and column."""
    filename, suffix, raw = read_table_upload(file, state, "batches.csv")
    with tempfile.TemporaryDirectory(prefix="axhub-process-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(raw)
        added = _service(state, principal).record_file(
            cell_id, path, filename, readings=timeseries_store(state)
        )
    return Stored(added=added)


@router.get("/cells/{cell_id}/recommendations", operation_id="list_process_recommendations")
def list_recommendations(cell_id: str, principal: Reader, state: State) -> list[dict[str, Any]]:
    return _service(state, principal).recommendations(cell_id)


@router.post("/cells/{cell_id}/recommendations", operation_id="propose_setpoints", status_code=201)
async def propose(cell_id: str, body: ProposeIn, principal: Writer, state: State) -> dict[str, Any]:
    """Learn from the records, read the machine, store a recommendation awaiting approval."""
    objective = Objective(body.yield_weight, dict(body.metric_weights))
    return await _service(state, principal).propose(
        cell_id, principal.actor, lot=body.lot, context=body.context, objective=objective
    )


@router.get("/cells/{cell_id}/audit", operation_id="list_process_audit")
def audit(cell_id: str, principal: Reader, state: State) -> list[dict[str, Any]]:
    return _service(state, principal).audit(cell_id)


@router.post("/recommendations/{rec_id}/dry-run", operation_id="dry_run_setpoints")
async def dry_run(rec_id: str, principal: Writer, state: State) -> dict[str, Any]:
    """What approving would write now, and which limits would refuse it; writes nothing."""
    return await _service(state, principal).dry_run(rec_id, principal.actor)


@router.post("/recommendations/{rec_id}/approve", operation_id="approve_setpoints")
async def approve(rec_id: str, state: State, principal: Principal = Approver) -> dict[str, Any]:
    """Approve and write: limits re-checked on the machine's values now, then read back."""
    return await _service(state, principal).approve(rec_id, principal.actor, principal.role)


@router.post("/recommendations/{rec_id}/reject", operation_id="reject_setpoints")
def reject(rec_id: str, body: DecisionIn, state: State, principal: Principal = Approver) -> dict[str, Any]:
    return _service(state, principal).reject(rec_id, principal.actor, principal.role, body.reason)


@router.post("/cells/{cell_id}/rollback", operation_id="rollback_setpoints")
async def rollback(cell_id: str, state: State, principal: Principal = Approver) -> dict[str, Any]:
    """Write back the setpoints in place before the last successful write."""
    return await _service(state, principal).rollback(cell_id, principal.actor, principal.role)
