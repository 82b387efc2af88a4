"""``axhub sim``: simulate a small plant and write its data and ground truth as files."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("sim")(sim_command)


def sim_command(
    days: float = typer.Option(2.0, "--days", help="How many days to simulate. / 시뮬레이션 일수."),
    seed: int = typer.Option(7, "--seed", help="Same seed, same data. / 난수 시드 (같으면 같은 데이터)."),
    interval: float = typer.Option(
        1.0, "--interval", help="Seconds between samples (1 = 1 Hz). / 샘플 간격(초)."
    ),
    out: Path = typer.Option(
        Path("sim-output"), "--out", help="Folder to write the CSV/JSON files into. / 출력 폴더."
    ),
    start: str | None = typer.Option(
        None,
        "--start",
        help="First timestamp, plant local time unless an offset is given (default 2025-03-03 06:00). "
        "/ 시작 시각 (공장 현지 시각).",
    ),
    fleet_train: int = typer.Option(100, "--fleet-train", help="Turbines in the RUL training fleet."),
    fleet_test: int = typer.Option(100, "--fleet-test", help="Turbines in the RUL test fleet."),
    # A '--live' option (serve the simulated plant over MQTT / OPC UA / Modbus instead of
    # writing files) is added by axhub.sim.live; keep this command's options compatible.
) -> None:
    """Simulate a plant (2 CNC machining centres, a pump, a gas turbine) and write files.

    Writes one CSV per machine in local time, the labelled faults (ground_truth.csv), per-part
    quality records, turbine run-to-failure tables and assets.json, described by manifest.json.
    The first 40 % of the period is fault-free, for training anomaly models.

    공장(CNC 2대, 펌프, 가스터빈)을 시뮬레이션하여 CSV 파일과 정답 레이블을 저장합니다.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from axhub.core.errors import AxHubError
    from axhub.sim.files import write_plant
    from axhub.sim.plant import PlantSpec, simulate_plant

    console = Console()
    spec = PlantSpec()
    n_files = 2 * len(spec.assets) + 6
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            sim_task = progress.add_task("Simulating assets / 설비 시뮬레이션", total=len(spec.assets))
            plant = simulate_plant(
                days,
                seed,
                interval_s=interval,
                start=start,
                spec=spec,
                progress=lambda _asset: progress.advance(sim_task),
            )
            file_task = progress.add_task("Writing files / 파일 저장", total=n_files)
            write_plant(
                plant,
                out,
                fleet_units=(fleet_train, fleet_test),
                progress=lambda _name: progress.advance(file_task),
            )
    except AxHubError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc

    table = Table(title=f"{plant.spec.site} ({plant.spec.site_ko}) — seed {seed}, {days:g} days")
    for col in ("asset", "kind", "signals", "points", "anomalies injected"):
        table.add_column(col, justify="right" if col in {"signals", "points"} else "left")
    for asset_id, data in plant.assets.items():
        gt = plant.ground_truth[plant.ground_truth["asset"] == asset_id]
        counts = gt["kind"].value_counts().sort_index()
        faults = ", ".join(f"{k} ×{v}" for k, v in counts.items()) or "-"
        n_sig = len(data.spec.signals)
        table.add_row(asset_id, str(data.spec.kind), str(n_sig), f"{len(data.frame) * n_sig:,}", faults)
    table.add_row("total", "", "", f"{plant.n_points:,}", str(len(plant.ground_truth)), style="bold")
    console.print(table)
    console.print(
        f"normal (fault-free) period until {plant.normal_end.tz_convert(plant.spec.timezone)}; "
        f"{len(plant.quality):,} part records; files in [bold]{out}[/bold] (see manifest.json)"
    )
