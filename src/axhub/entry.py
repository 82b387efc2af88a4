"""The `axhub` command. The hub's command line needs the `hub` extra; an edge-only install
(`pip install "axhub[edge]"`) lacks it, so say what to install instead of a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from axhub.cli.main import app
    except ModuleNotFoundError as exc:
        sys.exit(
            f"axhub: the hub's command line needs the 'hub' extra ({exc.name} is not installed).\n"
            "  Install it with:  pip install 'axhub[all]'\n"
            "  On an edge device, run the agent with:  python -m axhub.edge.agent --home DIR"
        )
    app()
