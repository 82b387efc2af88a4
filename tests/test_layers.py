"""The layer rule of docs/architecture.md, checked on the source: a package never imports one above
it (siblings may use each other), `sim` uses `core` only, and `edge` only `core`, the connectors and
the bundle reader. The two documented exceptions are listed with their reason."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "axhub"

LEVEL = {
    "core": 0,
    "store": 1,
    "sim": 1,
    "ingest": 2,
    "ml": 2,
    "registry": 2,
    "jobs": 3,
    "serve": 3,
    "production": 3,
    "federated": 3,
    "fleet": 3,
    "api": 4,
    "web": 5,
    # top-level tools
    "cli": 6,
    "bench": 6,
    "client": 6,
}
SIM_MAY_USE = {"core", "sim"}
EDGE_MAY_USE = (
    "axhub.core",
    "axhub.edge",
    "axhub.ingest.connectors",
    "axhub.ingest.tag_mapping",  # the connectors' tag mapping (core only)
    "axhub.registry.bundle",
    "axhub.registry.normal_ranges",  # normal ranges and per-row explanations (numpy only)
)
EXCEPTIONS = {
    # The API process serves the dashboard too: the app factory mounts it (web never reaches back).
    ("api/main.py", "axhub.web"),
    # The hub speaks the device protocol with the agent's own definitions: the config schema it
    # pushes and the batch encoding it receives.
    ("fleet/service.py", "axhub.edge.config"),
    ("fleet/service.py", "axhub.edge.buffer"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, m) for line, m in out if m.startswith("axhub.")]


def _problem(rel: str, pkg: str, module: str) -> str | None:
    target = module.split(".")[1]
    if target == pkg or any(rel == f and module.startswith(m) for f, m in EXCEPTIONS):
        return None
    if pkg == "sim":
        return None if target in SIM_MAY_USE else "sim uses core only"
    if pkg == "edge":
        return None if module.startswith(EDGE_MAY_USE) else "edge uses core, the connectors and bundles only"
    if target == "edge":
        return None if pkg in {"cli", "bench"} else "only the agent's own package and the tools import edge"
    if target not in LEVEL or pkg not in LEVEL:
        return None
    return "imports a layer above it" if LEVEL[target] > LEVEL[pkg] else None


def test_no_package_imports_a_layer_above_it() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if "/" not in rel or rel.startswith("store/migrations/"):
            continue
        pkg = rel.split("/")[0]
        for line, module in _imports(path):
            why = _problem(rel, pkg, module)
            if why:
                problems.append(f"{rel}:{line} imports {module}: {why}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_upward_import() -> None:
    assert _problem("store/x.py", "store", "axhub.api.deps") == "imports a layer above it"
    assert _problem("edge/x.py", "edge", "axhub.store.db") is not None
    assert _problem("sim/x.py", "sim", "axhub.ml.base") is not None
    assert _problem("serve/x.py", "serve", "axhub.edge.buffer") is not None
    assert _problem("ml/x.py", "ml", "axhub.registry.export") is None  # siblings


def test_the_hub_and_the_cli_start_without_torch() -> None:
    """torch is an optional extra (no CPU wheel for some Pythons): the API, the dashboard and the
    CLI must import without it, importing torch only inside the model code that needs it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
        "import axhub.cli.main, axhub.web.pages\n"
        "from axhub.api.main import _routers\n"
        "_routers()\n"  # every route module, as create_app imports them
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
