"""``axhub federated``: collaborations across companies (create, invite, accept with a signal
mapping and a site policy, leave, run, show)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from axhub.cli._context import console, friendly_errors, open_database
from axhub.cli._lang import TEXTS, lang_option, t

fed_app = typer.Typer(
    help="Federated learning across companies: data stay at each company. / 기업 간 연합 학습.",
    no_args_is_help=True,
)
ORG_HELP = "Your organisation (default: settings). / 조직."


def register(app: typer.Typer) -> None:
    app.add_typer(fed_app, name="federated")


def _org(db: Any, slug: str | None) -> str:
    from axhub.cli._context import org_id_for
    from axhub.core.settings import get_settings

    return org_id_for(db, slug or get_settings().default_org)


@contextmanager
def _as_org(slug: str | None) -> Iterator[tuple[Any, str]]:
    """A session of the metadata database and the id of the company acting (``--org``)."""
    db = open_database()
    me = _org(db, slug)
    with db.session() as session:
        yield session, me


def _existing_org(session: Any, slug: str) -> str:
    from sqlalchemy import select

    from axhub.core.errors import NotFoundError
    from axhub.store.models import OrganizationRow

    org = session.scalars(select(OrganizationRow).where(OrganizationRow.slug == slug)).first()
    if org is None:
        raise NotFoundError(f"organisation '{slug}' not found")
    return str(org.id)


def _policy(path: Path | None) -> dict[str, Any]:
    from axhub.core.errors import AxHubError

    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AxHubError(f"{path.name}: not a readable JSON policy ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise AxHubError(f"{path.name}: a policy is a JSON object")
    return raw


@fed_app.command("create")
@friendly_errors
def create_command(
    name: str = typer.Argument(..., help="Name of the collaboration. / 이름."),
    signals: str = typer.Option(..., help="Shared signal schema, comma-separated. / 공통 신호."),
    target: str | None = typer.Option(None, help="Target signal (RUL, label). / 목표 신호."),
    family: str = typer.Option("rul_mlp", help="rul_mlp | diagnosis_mlp | mspc / 모델 종류."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Start a collaboration as its lead company. / 협업 생성(주관 기업)."""
    from axhub.federated import collab

    schema = {"signals": [s.strip() for s in signals.split(",") if s.strip()], "target": target}
    with _as_org(org) as (session, lead):
        row = collab.create(session, lead, name, family, schema)
        console.print(f"created {row.id}")


@fed_app.command("invite")
@friendly_errors
def invite_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    member: str = typer.Argument(..., help="Invited company (organisation slug). / 초대할 기업."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Invite a company (lead only). / 기업 초대."""
    from axhub.federated import collab

    with _as_org(org) as (session, lead):
        collab.invite(session, lead, collaboration, _existing_org(session, member))
        console.print(f"invited {member}")


@fed_app.command("accept")
@friendly_errors
def accept_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    asset: str = typer.Option(..., help="Your asset (slug) with the data. / 설비."),
    map_: list[str] = typer.Option(
        [], "--map", help="SCHEMA=YOURS, once per schema signal (default: same name). / 신호 매핑."
    ),
    policy: Path | None = typer.Option(None, help="Site policy JSON file. / 사이트 정책 파일."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Join: map your signals onto the schema and set your site policy. / 참여 수락."""
    from axhub.federated import collab
    from axhub.store.models import FedCollaborationRow
    from axhub.store.scoped import OrgScope

    with _as_org(org) as (session, me):
        row = collab.visible(session, me, collaboration)
        assert isinstance(row, FedCollaborationRow)
        names = list(row.schema["signals"]) + ([row.schema["target"]] if row.schema.get("target") else [])
        mapping = {n: n for n in names}
        mapping.update(dict(item.split("=", 1) for item in map_ if "=" in item))
        collab.accept(
            OrgScope(session, me), collaboration, {"asset": asset, "signals": mapping}, _policy(policy)
        )
        console.print(f"joined {collaboration}")


@fed_app.command("policy")
@friendly_errors
def policy_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    policy: Path = typer.Argument(..., help="Site policy JSON file. / 사이트 정책 파일."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Change your site policy. / 사이트 정책 변경."""
    from axhub.federated import collab
    from axhub.store.scoped import OrgScope

    with _as_org(org) as (session, me):
        collab.set_policy(OrgScope(session, me), collaboration, _policy(policy))
        console.print("policy saved")


@fed_app.command("leave")
@friendly_errors
def leave_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Leave a collaboration. / 협업 탈퇴."""
    from axhub.federated import collab
    from axhub.store.scoped import OrgScope

    with _as_org(org) as (session, me):
        collab.leave(OrgScope(session, me), collaboration)
        console.print(f"left {collaboration}")


@fed_app.command("run")
@friendly_errors
def run_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    rounds: int = typer.Option(5, help="Rounds. / 라운드 수."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
) -> None:
    """Run the members' clients as separate processes, each in its own scope (lead only). / 연합 학습 실행."""
    from axhub.core.settings import get_settings
    from axhub.federated import hub

    db = open_database()
    me = _org(db, org)
    summary = hub.run(
        db.session, collaboration, rounds=rounds, workdir=get_settings().home / "federated", by_org=me
    )
    console.print(
        f"run {summary['run_id']}: {len(summary['rounds'])} rounds, stopped: {summary['stopped'] or '-'}"
    )


@fed_app.command("show")
@friendly_errors
def show_command(
    collaboration: str = typer.Argument(..., help="Collaboration id. / 협업 ID."),
    org: str | None = typer.Option(None, "--org", help=ORG_HELP),
    lang: str | None = lang_option(),
) -> None:
    """Members, policies, ε spent, rounds and contributions. / 협업 현황."""
    from axhub.federated import collab

    with _as_org(org) as (session, me):
        view = collab.overview(session, me, collaboration)
    table = Table(title=f"{view['name']} ({view['family']})")
    columns = ("member", "status", "min_samples", "eps_budget", "eps_spent", "secure_agg", "metrics_out")
    for col in columns:
        table.add_column(t(f"fed.{col}"))
    for m in view["members"]:
        p = m["policy"] or {}
        dp = p.get("dp") or {}
        table.add_row(
            m["name"],
            t(f"fed.status.{m['status']}") if f"fed.status.{m['status']}" in TEXTS else m["status"],
            str(p.get("min_local_samples", "-")),
            f"{dp['epsilon_budget']:g}" if dp else "-",
            f"{m['epsilon_spent']:.2f}",
            t("fed.yes") if p.get("secure_aggregation_required") else t("fed.no"),
            ", ".join(p.get("allowed_metrics", [])),
        )
    console.print(table)
    # Contributions are keyed by organisation id: people read company names.
    names = {m["org_id"]: m["name"] for m in view["members"]}
    for r in view["rounds"]:
        contribution = {names.get(k, k): round(v, 4) for k, v in (r.get("contribution") or {}).items()}
        console.print(
            t("fed.round", round=r["round"], seconds=r.get("seconds", 0), contribution=contribution)
        )
