"""Where the benchmark data lives, and the one error said when it does not."""

from __future__ import annotations

from pathlib import Path

from axhub.core.errors import NotFoundError
from axhub.core.settings import Settings


def dataset_folder(name: str, root: Path | None = None) -> Path:
    """``<datasets root>/<name>``; a clear error when it is missing.

    ``root`` defaults to ``Settings().datasets`` (env ``AXHUB_DATASETS``).
    """
    base = Path(root) if root is not None else Settings().datasets
    folder = base / name
    if not folder.is_dir():
        raise NotFoundError(
            f"dataset '{name}' not found at {folder}",
            hint="set AXHUB_DATASETS to the folder holding the benchmark datasets",
        )
    return folder
