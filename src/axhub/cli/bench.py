"""``axhub bench NAME``: benchmarks over the public datasets and the platform's own load."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import axhub.bench as bench_package


def register(app: typer.Typer) -> None:
    bench_app = typer.Typer(
        help="Run a benchmark: prints a table with baselines and published figures and saves JSON. "
        "Dataset benchmarks take --data and --out and touch docs/benchmarks.md, docs/img and "
        "bench-results/ only with --update-docs. / 벤치마크 실행.",
        no_args_is_help=True,
    )
    for info in sorted(pkgutil.iter_modules(bench_package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "report":
            continue
        module = importlib.import_module(f"axhub.bench.{info.name}")
        register_bench = getattr(module, "register", None)
        if callable(register_bench):
            register_bench(bench_app)
    app.add_typer(bench_app, name="bench")
