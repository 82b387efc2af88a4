"""`axhub init --org X --slug s` makes that company the default of later commands run without
`--org`, each as its own process (no company `demo` appears behind the user's back)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from axhub.store.db import Database
from axhub.store.models import AssetRow, OrganizationRow


def _axhub(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "axhub.cli.main", *args], env=env, capture_output=True, text=True, timeout=300
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in out, out
    return out


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AXHUB_DEFAULT_ORG"}
    src = str(Path(__file__).parents[1] / "src")
    return {**env, "AXHUB_HOME": str(home), "PYTHONPATH": os.pathsep.join([src, env.get("PYTHONPATH", "")])}


def _orgs_and_assets(home: Path) -> tuple[set[str], dict[str, str]]:
    db = Database(f"sqlite:///{home / 'axhub.db'}")
    with db.session() as session:
        orgs = {o.id: o.slug for o in session.scalars(select(OrganizationRow))}
        assets = {a.slug: orgs[a.org_id] for a in session.scalars(select(AssetRow))}
    db.dispose()
    return set(orgs.values()), assets


def test_init_company_is_the_default_of_later_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home)
    _axhub(env, "init", "--org", "한빛정밀", "--slug", "hanbit")
    csv = tmp_path / "press.csv"
    csv.write_text("ts,온도\n2026-03-02 09:00,21.5\n2026-03-02 09:01,21.7\n", encoding="utf-8")
    _axhub(env, "ingest", str(csv), "--asset", "press-1")
    out = _axhub(env, "query", "press-1", "--signals", "온도", "--lang", "en")
    assert "21.7" in out
    orgs, assets = _orgs_and_assets(home)
    assert orgs == {"hanbit"}, orgs  # no 'demo' company made behind the user's back
    assert assets == {"press-1": "hanbit"}

    # An explicit AXHUB_DEFAULT_ORG still wins over what init chose.
    _axhub({**env, "AXHUB_DEFAULT_ORG": "other"}, "ingest", str(csv), "--asset", "press-2")
    orgs, assets = _orgs_and_assets(home)
    assert assets["press-2"] == "other" and assets["press-1"] == "hanbit"
