"""Approved setpoints reach the machine, nothing else does: the simulated cell's OPC UA and
Modbus servers, and an OPC UA server nobody on AX Hub wrote (node-opcua)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from axhub.core.errors import ConflictError, NotFoundError, PermissionDeniedError
from axhub.ml.process.limits import ProcessLimits
from axhub.serve.process import ProcessService
from axhub.serve.setpoints import SetpointTarget, read_setpoints, write_setpoints
from axhub.sim import process as sp
from axhub.sim.process_cell import ProcessCell
from axhub.store.db import Database
from axhub.store.models import OrganizationRow

NAMES = list(sp.BOUNDS)


def _org(db: Database, slug: str) -> str:
    with db.session() as s:
        row = OrganizationRow(name=slug, slug=slug)
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    database.migrate()
    yield database
    database.dispose()


def _limits() -> ProcessLimits:
    return ProcessLimits(sp.BOUNDS, dict(sp.MAX_STEP), list(sp.FORBIDDEN), trust_radius=0.3)


def _opcua_target(cell: ProcessCell) -> SetpointTarget:
    return SetpointTarget("opcua", endpoint=cell.endpoint, nodes={n: cell.node_id(n) for n in NAMES})


def _modbus_target(cell: ProcessCell) -> SetpointTarget:
    return SetpointTarget(
        "modbus", port=cell.modbus_port, unit=1, registers={n: cell.register(n) for n in NAMES}
    )


async def _history(cell: ProcessCell, n: int) -> list[dict[str, object]]:
    """Batches run at small changes around the baseline, set on the cell's own panel."""
    rng = np.random.default_rng(0)
    records: list[dict[str, object]] = []
    for i in range(n):
        settings = {k: v + rng.uniform(-0.5, 0.5) * sp.MAX_STEP[k] for k, v in sp.BASELINE.items()}
        await cell.set(settings)
        parts = await cell.run_batch()
        records.append(
            {
                "batch_key": f"B{i:03d}", "lot": parts[0].lot, "settings": parts[0].settings,
                "n_parts": len(parts), "n_passed": sum(p.passed for p in parts),
                "started_at": parts[0].started_at.isoformat(),
            }
        )  # fmt: skip
    await cell.set(sp.BASELINE)
    return records


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(abs(a[n] - b[n]) <= 1e-5 * max(1.0, abs(b[n])) for n in b)


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_only_an_approved_recommendation_is_written_then_read_back_and_rolled_back(
    db: Database, protocol: str
) -> None:
    async def scenario() -> None:
        cell = ProcessCell(seed=1)
        await cell.start()
        try:
            target = _opcua_target(cell) if protocol == "opcua" else _modbus_target(cell)
            org = _org(db, "acme")
            svc = ProcessService(db, org)
            cell_id = svc.create_cell("CNC-07", _limits(), target)
            records = await _history(cell, 6)
            assert svc.record_batches(cell_id, records) == 6
            assert svc.record_batches(cell_id, records) == 0  # idempotent on batch_key
            before = await cell.setpoints()

            rec = await svc.propose(cell_id, "user-eng", lot="LOT-A")
            assert rec["status"] == "proposed"
            assert rec["predicted"]["predicted"]["low"] <= rec["predicted"]["predicted"]["high"]
            assert set(rec["predicted"]["evidence"]["importance"]) == set(NAMES)

            # No approval, no write: an engineer or a viewer cannot approve; a dry run writes nothing.
            for role in ("engineer", "viewer"):
                with pytest.raises(PermissionDeniedError):
                    await svc.approve(rec["id"], "user-eng", role)
            dry = await svc.dry_run(rec["id"], "user-eng")
            assert dry["action"] == "dry_run" and dry["violations"] == []
            assert _close(await cell.setpoints(), before)
            # Another company cannot see or approve it.
            other = ProcessService(db, _org(db, "rival"))
            with pytest.raises(NotFoundError):
                await other.approve(rec["id"], "boss", "approver")

            entry = await svc.approve(rec["id"], "user-boss", "approver")
            assert entry["ok"] and entry["actor"] == "user-boss"
            now = await cell.setpoints()
            assert _close(now, rec["settings"]) and _close(entry["read_back"], rec["settings"])
            assert _close(entry["before"], before)
            # The parts are now made with the new settings.
            assert _close((await cell.run_batch(2))[0].settings, rec["settings"])
            with pytest.raises(ConflictError):  # written once, never twice
                await svc.approve(rec["id"], "user-boss", "approver")

            back = await svc.rollback(cell_id, "user-boss", "approver")
            assert back["ok"] and _close(await cell.setpoints(), before)
            statuses = {r["id"]: r["status"] for r in svc.recommendations(cell_id)}
            assert statuses[rec["id"]] == "rolled_back"
            actions = [a["action"] for a in svc.audit(cell_id)]
            assert actions == ["rollback", "write", "dry_run"]
        finally:
            await cell.stop()

    asyncio.run(scenario())


def test_limits_are_checked_again_at_write_time(db: Database) -> None:
    async def scenario() -> None:
        cell = ProcessCell(seed=2)
        await cell.start()
        try:
            target = _opcua_target(cell)
            svc = ProcessService(db, _org(db, "acme"))
            cell_id = svc.create_cell("CNC-07", _limits(), target)
            svc.record_batches(cell_id, await _history(cell, 5))
            rec = await svc.propose(cell_id, "eng")
            # Someone moves the machine by hand meanwhile (via Modbus): the step is now too large.
            moved = {**sp.BASELINE, "spindle_speed_rpm": rec["settings"]["spindle_speed_rpm"] - 1500}
            await write_setpoints(_modbus_target(cell), moved)
            entry = await svc.approve(rec["id"], "boss", "approver")
            assert not entry["ok"] and "step" in entry["message"]
            assert _close(await cell.setpoints(), moved)  # nothing written
            assert svc.recommendations(cell_id)[0]["status"] == "refused"
            rejected = await svc.propose(cell_id, "eng")
            svc.reject(rejected["id"], "boss", "approver", "not before the audit")
            with pytest.raises(ConflictError):
                await svc.approve(rejected["id"], "boss", "approver")
            # The machine goes away after the recommendation: the approval fails, on record.
            late = await svc.propose(cell_id, "eng")
            await cell.stop()
            entry = await svc.approve(late["id"], "boss", "approver")
            assert not entry["ok"] and "not reachable" in entry["message"]
            assert svc.recommendations(cell_id)[0]["status"] == "failed"
        finally:
            await cell.stop()

    asyncio.run(scenario())


@pytest.mark.slow
def test_setpoints_on_an_independent_opcua_server(tmp_path: Path, db: Database) -> None:
    from tests._live import free_port
    from tests._peers import NodePeer

    port = free_port()
    nodes = {n: f"ns=1;s=Cell7.{n}" for n in NAMES}
    target = SetpointTarget("opcua", endpoint=f"opc.tcp://127.0.0.1:{port}/axhub", nodes=nodes)
    with NodePeer("opcua_server.js", str(port), str(tmp_path / "pki")):

        async def scenario() -> None:
            assert _close(await read_setpoints(target), sp.BASELINE | {"feed_per_tooth_mm": 0.14,
                          "spindle_speed_rpm": 6800.0, "clamp_pressure_bar": 3.4})  # fmt: skip
            start = {"feed_per_tooth_mm": 0.1, "spindle_speed_rpm": 7000.0, "clamp_pressure_bar": 3.6}
            assert _close(await write_setpoints(target, start), start)
            svc = ProcessService(db, _org(db, "acme"))
            cell_id = svc.create_cell("Cell7", _limits(), target)
            sim = sp.ProcessSim(seed=4)
            rng = np.random.default_rng(4)
            records = []
            for i in range(5):
                s = {k: v + rng.uniform(-0.5, 0.5) * sp.MAX_STEP[k] for k, v in start.items()}
                parts = sim.run_batch(s)
                records.append({"batch_key": f"P{i}", "lot": parts[0].lot, "settings": s,
                                "n_parts": len(parts), "n_passed": sum(p.passed for p in parts)})  # fmt: skip
            svc.record_batches(cell_id, records)
            rec = await svc.propose(cell_id, "eng")
            entry = await svc.approve(rec["id"], "boss", "approver")
            assert entry["ok"] and _close(await read_setpoints(target), rec["settings"])
            back = await svc.rollback(cell_id, "boss", "approver")
            assert back["ok"] and _close(await read_setpoints(target), start)

        asyncio.run(scenario())


def test_batches_get_features_of_the_machine_signals_during_their_cycle(db: Database, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from axhub.core.readings import READINGS_SCHEMA
    from axhub.store.scoped import OrgScope
    from axhub.store.timeseries import TimeSeriesStore

    org = _org(db, "acme")
    with db.session() as s:
        scope = OrgScope(s, org)
        asset = scope.ensure_asset(scope.ensure_site("1공장"), "가공기 7", slug="cnc-07")
        asset_id, slug = asset.id, asset.slug
    store = TimeSeriesStore(tmp_path / "ts")
    t0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    # Spindle load: 10 during the first batch's cycle, 20 during the second's, 99 between them.
    ts = [t0 + timedelta(seconds=i) for i in range(0, 300, 10)]
    values = [10.0 if i < 100 else 99.0 if i < 200 else 20.0 for i in range(0, 300, 10)]
    store.write(
        org,
        pa.table(
            {"asset": [slug] * len(ts), "signal": ["주축부하"] * len(ts), "ts": ts, "value": values,
             "quality": [0] * len(ts)},
            schema=READINGS_SCHEMA,
        ),
    )  # fmt: skip
    svc = ProcessService(db, org)
    target = SetpointTarget("opcua", endpoint="opc.tcp://127.0.0.1:1/", nodes={n: n for n in NAMES})
    cell_id = svc.create_cell("CNC-07", _limits(), target, context_names=["주축부하.mean"], asset_id=asset_id)
    windows = [(0, 100), (200, 300)]
    records = [
        {"batch_key": f"W{i}", "settings": dict(sp.BASELINE), "n_parts": 10, "n_passed": 9,
         "started_at": (t0 + timedelta(seconds=a)).isoformat(),
         "finished_at": (t0 + timedelta(seconds=b)).isoformat()}
        for i, (a, b) in enumerate(windows)
    ]  # fmt: skip
    assert svc.record_batches(cell_id, records, store) == 2
    contexts = [o.context for o in svc.outcomes(cell_id)]
    assert [c["주축부하.mean"] for c in contexts] == [10.0, 20.0]
    assert [c["주축부하.max"] for c in contexts] == [10.0, 20.0]
    store.close()


@pytest.mark.slow
def test_closed_loop_end_to_end_through_opcua(db: Database) -> None:
    """Propose, approve, write over OPC UA, the cell makes a batch at what it holds, record it,
    again: the true yield of the cell's settings rises, and every write is allowed and read back."""

    async def scenario() -> None:
        cell = ProcessCell(seed=11, parts_per_batch=60)
        await cell.start()
        try:
            target = _opcua_target(cell)
            svc = ProcessService(db, _org(db, "acme"))
            cell_id = svc.create_cell("CNC-07", _limits(), target)
            svc.record_batches(cell_id, await _history(cell, 4))
            start = sp.true_yield(await cell.setpoints(), "LOT-A", 0)
            for i in range(5):
                rec = await svc.propose(cell_id, "eng", lot=cell.sim.next_lot(), seed=i)
                entry = await svc.approve(rec["id"], "boss", "approver")
                assert entry["ok"], entry["message"]
                parts = await cell.run_batch()
                assert _close(parts[0].settings, rec["settings"])
                svc.record_batches(
                    cell_id,
                    [{"batch_key": f"L{i}", "lot": parts[0].lot, "settings": parts[0].settings,
                      "n_parts": len(parts), "n_passed": sum(p.passed for p in parts)}],
                )  # fmt: skip
            end = sp.true_yield(await cell.setpoints(), "LOT-A", 0)
            assert end > start + 0.1, (start, end)
            writes = [a for a in svc.audit(cell_id) if a["action"] == "write"]
            assert len(writes) == 5 and all(a["ok"] for a in writes)
        finally:
            await cell.stop()

    asyncio.run(scenario())


def test_sim_process_command_makes_batches_at_the_cell_setpoints() -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app

    result = CliRunner().invoke(
        app, ["sim-process", "--opcua-port", "0", "--modbus-port", "0", "--every", "0.05", "--batches", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("sim-0-")]
    assert len(lines) == 2 and all(" passed" in line for line in lines)
    assert "s=CNC-07.spindle_speed_rpm" in result.output
