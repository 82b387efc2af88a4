"""Where a dataset benchmark reads and writes, shared by the sensor-model benchmarks.

Every such benchmark takes ``--data`` (the datasets root, default ``AXHUB_DATASETS``), its own
selection options (subsets, runs, loads, experiments), ``--out`` (default
``$AXHUB_HOME/bench/<name>``) and ``--update-docs``. Without ``--update-docs`` nothing in the
checkout is touched: the JSON and the plots go to the output folder only. With it, the plots are
copied to ``docs/img``, the JSON to ``bench-results/`` and the section of ``docs/benchmarks.md``
is replaced. A benchmark that finds nothing to run raises :class:`NothingToRun`, which the
command turns into a message and exit code 2.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from axhub.bench.report import BenchResult, _repo_root, print_table, results_dir, update_docs
from axhub.core.settings import Settings

EXIT_NOTHING_TO_RUN = 2


class NothingToRun(Exception):
    """The selection matched no data: the benchmark must fail, not report an empty table."""


@dataclass(frozen=True)
class BenchIO:
    name: str
    data: Path
    out: Path
    update_docs: bool

    @classmethod
    def make(cls, name: str, data: Path | None, out: Path | None, update: bool) -> BenchIO:
        settings = Settings()
        root = Path(data).expanduser() if data is not None else settings.datasets
        folder = Path(out).expanduser() if out is not None else settings.home / "bench" / name
        folder.mkdir(parents=True, exist_ok=True)
        return cls(name=name, data=root, out=folder, update_docs=update)

    def plot(self, filename: str) -> Path:
        """Path for a plot in the output folder (copied to docs/img with --update-docs)."""
        return self.out / filename

    def publish(self, result: BenchResult) -> Path:
        """Print the table, save the JSON (and, with --update-docs, the docs section)."""
        print_table(result)
        local = replace(result, plots=[str(self.out / Path(p).name) for p in result.plots])
        path = self.out / f"{result.name}.json"
        path.write_text(json.dumps(local.to_json(), indent=2, default=str))
        typer.echo(f"results: {path}")
        if self.update_docs:
            img = _repo_root() / "docs" / "img"
            img.mkdir(parents=True, exist_ok=True)
            for plot in result.plots:
                source = self.out / Path(plot).name
                if source.is_file():
                    shutil.copyfile(source, img / source.name)
            docs = replace(result, plots=[f"img/{Path(p).name}" for p in result.plots])
            (results_dir() / f"{result.name}.json").write_text(
                json.dumps(docs.to_json(), indent=2, default=str)
            )
            typer.echo(f"docs updated: {update_docs(docs)}")
        return path


def split_list(value: str | None) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty or None -> ``[]``."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def fail_nothing(message: str) -> typer.Exit:
    """Say why nothing ran, on stderr, and give the exit to raise."""
    typer.echo(f"Nothing to benchmark: {message}", err=True)
    return typer.Exit(EXIT_NOTHING_TO_RUN)


DATA_HELP = "datasets root (default AXHUB_DATASETS) / 데이터셋 폴더"
OUT_HELP = "output folder for JSON and plots (default $AXHUB_HOME/bench/<name>) / 결과 폴더"
DOCS_HELP = "also update docs/benchmarks.md, docs/img and bench-results/ / 문서도 갱신"
