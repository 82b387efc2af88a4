"""``axhub sim-process``: serve the simulated process cell (OPC UA setpoints, Modbus holding
registers) and make a batch every few seconds at whatever setpoints it holds; each batch is
printed and, with ``--hub``/``--key``/``--cell``, sent to the hub as a batch record, so the
whole loop (recommend, approve in the dashboard, write, make parts, learn) runs live."""

from __future__ import annotations

import contextlib

import typer


def register(app: typer.Typer) -> None:
    app.command("sim-process")(sim_process)


def sim_process(
    opcua_port: int = typer.Option(4841, help="OPC UA port of the cell / OPC UA 포트"),
    modbus_port: int = typer.Option(5021, help="Modbus TCP port of the cell / Modbus 포트"),
    every: float = typer.Option(10.0, help="seconds between batches / 배치 간격(초)"),
    parts: int = typer.Option(40, help="parts per batch / 배치당 부품 수"),
    batches: int = typer.Option(0, help="stop after this many batches (0: run until Ctrl-C) / 배치 수"),
    seed: int = typer.Option(0, help="random seed / 난수 시드"),
    hub: str = typer.Option("", help="hub URL, e.g. http://127.0.0.1:8000 / 허브 주소"),
    key: str = typer.Option("", envvar="AXHUB_KEY", help="API key with the 'ingest' scope / API 키"),
    cell: str = typer.Option("", help="the hub's process cell id / 허브의 공정 설비 ID"),
) -> None:
    """Serve the simulated process cell and make batches. / 공정 시뮬레이터를 실행합니다."""
    import asyncio

    from axhub.sim.process_cell import ProcessCell

    async def run() -> None:
        machine = ProcessCell(
            seed=seed, parts_per_batch=parts, opcua_port=opcua_port, modbus_port=modbus_port
        )
        await machine.start()
        typer.echo(f"OPC UA {machine.endpoint} nodes " + ", ".join(machine.node_id(n) for n in machine.names))
        typer.echo(
            f"Modbus 127.0.0.1:{machine.modbus_port} float32 holding registers "
            + ", ".join(f"{n}@{machine.register(n)}" for n in machine.names)
        )
        made = 0
        try:
            while not batches or made < batches:
                await asyncio.sleep(every)
                made_parts = await machine.run_batch()
                record = {
                    "batch_key": f"sim-{seed}-{made_parts[0].batch:05d}",
                    "lot": made_parts[0].lot,
                    "settings": made_parts[0].settings,
                    "n_parts": len(made_parts),
                    "n_passed": sum(p.passed for p in made_parts),
                    "metrics": {
                        "cycle_time_s": made_parts[0].cycle_time_s,
                        "energy_kwh": made_parts[0].energy_kwh,
                    },
                    "started_at": made_parts[0].started_at.isoformat(),
                    "finished_at": made_parts[-1].finished_at.isoformat(),
                }
                typer.echo(
                    f"{record['batch_key']} {record['lot']} {record['n_passed']}/{record['n_parts']} passed"
                )
                if hub and key and cell:
                    import httpx

                    r = httpx.post(
                        f"{hub.rstrip('/')}/api/v1/process/cells/{cell}/batches",
                        json={"batches": [record]},
                        headers={"Authorization": f"Bearer {key}"},
                        timeout=10,
                    )
                    if r.status_code >= 300:
                        typer.echo(f"  hub refused the record: {r.status_code} {r.text[:200]}", err=True)
                made += 1
        finally:
            await machine.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
