"""``axhub edge token|enrol|run|status|rollout|revoke``: the edge fleet from the command line.

``token``, ``rollout``, ``revoke`` and ``status`` (without ``--home``) run on the hub (they use
its database and signing key); ``enrol``, ``run`` and ``status --home`` run on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from axhub.cli._context import console, friendly_errors
from axhub.cli._lang import lang_option, t

_ORG_HELP = "Organisation slug (default: the one 'axhub init' made). / 회사 ID."


def register(app: typer.Typer) -> None:
    edge_app = typer.Typer(
        help="Edge devices: enrol, run the agent, fleet status, signed rollouts. / 엣지 장치.",
        no_args_is_help=True,
    )

    def _hub() -> tuple[Any, Any]:
        from axhub.cli._context import open_database
        from axhub.core.settings import get_settings

        return get_settings(), open_database()

    @edge_app.command("token")
    @friendly_errors
    def token_cmd(
        name: str = typer.Argument(..., help="The device's name. / 장치 이름."),
        group: str = typer.Option("default", help="Device group (rollouts go to a group). / 장치 그룹."),
        hours: float = typer.Option(72, help="Valid for this many hours. / 유효 시간."),
        org: str | None = typer.Option(
            None, help="Organisation slug (default: the one 'axhub init' made). / 회사 ID."
        ),
        lang: str | None = lang_option(),
    ) -> None:
        """Issue a one-time enrolment token for a device (run on the hub). / 등록 토큰 발급."""
        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import issue_token
        from axhub.store.scoped import OrgScope

        _settings, db = _hub()
        with db.session() as session:
            token, row = issue_token(
                OrgScope(session, org_scope_id(db, org)), name, group, created_by="cli", ttl_hours=hours
            )
            until = row.expires_at.isoformat(timespec="minutes")
        console.print(t("edge.token", name=name, group=group, until=until))
        console.print(token, markup=False)
        console.print(t("edge.token.once"))

    @edge_app.command("enrol")
    @friendly_errors
    def enrol_cmd(
        hub: str = typer.Option(..., help="The hub's URL, e.g. https://hub.example:8000 / 허브 주소."),
        token: str = typer.Option(
            ..., help="The one-time token from 'axhub edge token'. / 일회용 등록 토큰."
        ),
        home: Path = typer.Option(
            Path("axhub-edge"), help="The agent's directory on this device. / 장치의 에이전트 폴더."
        ),
        name: str = typer.Option("edge", help="This device's name. / 이 장치의 이름."),
        lang: str | None = lang_option(),
    ) -> None:
        """Exchange the token for this device's own credential (run on the device). / 장치 등록."""
        from axhub.edge.agent import enrol_device
        from axhub.registry.signing import fingerprint

        identity = enrol_device(home, hub, token, name)
        console.print(
            t("edge.enrolled", id=identity.device_id, fp=fingerprint(identity.hub_public_key.encode()))
        )

    @edge_app.command("run")
    def run_cmd(
        home: Path = typer.Option(
            Path("axhub-edge"), help="The agent's directory on this device. / 장치의 에이전트 폴더."
        ),
        duration: float | None = typer.Option(
            None, help="Stop after this many seconds. / 이 시간(초) 뒤 멈춤."
        ),
    ) -> None:
        """Run the edge agent (connectors, buffer, scoring, alerts, sync, updates). / 에이전트 실행."""
        from axhub.edge.agent import main

        raise typer.Exit(
            main(["--home", str(home), *([] if duration is None else ["--duration", str(duration)])])
        )

    @edge_app.command("status")
    @friendly_errors
    def status_cmd(
        home: Path | None = typer.Option(
            None, help="Show this device's own status instead of the fleet. / 이 장치의 상태."
        ),
        org: str | None = typer.Option(
            None, help="Organisation slug (default: the one 'axhub init' made). / 회사 ID."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output. / JSON 출력."),
        lang: str | None = lang_option(),
    ) -> None:
        """The fleet as the hub sees it (on the hub), or one device's own status (--home). / 장치 현황."""
        if home is not None:
            console.print_json(json.dumps(json.loads((home / "status.json").read_text())))
            return
        from rich.table import Table

        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import fleet
        from axhub.store.scoped import OrgScope

        _settings, db = _hub()
        with db.session() as session:
            devices = fleet(OrgScope(session, org_scope_id(db, org)))
        if as_json:
            console.print_json(json.dumps(devices, default=str))
            return
        table = Table(title=t("edge.fleet"))
        for col in ("name", "group", "online", "sync", "depth", "bundle", "agent", "cpu", "rss"):
            table.add_column(t(f"edge.col.{col}"))
        for d in devices:
            online = t("edge.revoked") if d["revoked"] else t("edge.yes" if d["online"] else "edge.no")
            table.add_row(
                d["name"],
                d["group"],
                online,
                d["last_sync_at"].isoformat(timespec="seconds") if d["last_sync_at"] else "-",
                str(d["buffer_depth"]),
                (d["bundle_name"] or "-") + (f" {d['bundle_sha256'][:8]}" if d["bundle_sha256"] else ""),
                d["agent_version"],
                "-" if d["cpu_percent"] is None else f"{d['cpu_percent']:.1f}",
                "-" if d["rss_mb"] is None else f"{d['rss_mb']:.0f}",
            )
        console.print(table)

    @edge_app.command("rollout")
    @friendly_errors
    def rollout_cmd(
        version: str = typer.Argument(..., help="Model version id to send. / 보낼 모델 버전."),
        group: str = typer.Option(..., help="Device group. / 장치 그룹."),
        canary: str | None = typer.Option(
            None, help="Canary device id (default: the group's oldest). / 먼저 받을 장치."
        ),
        org: str | None = typer.Option(
            None, help="Organisation slug (default: the one 'axhub init' made). / 회사 ID."
        ),
        lang: str | None = lang_option(),
    ) -> None:
        """Sign a model version's bundle with the hub key and roll it out, canary first. / 서명 배포."""
        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import start_rollout
        from axhub.registry.signing import load_or_create_hub_key
        from axhub.registry.store import ModelRegistry
        from axhub.store.blobs import BlobStore
        from axhub.store.scoped import OrgScope

        settings, db = _hub()
        blobs = BlobStore(settings.blob_root)
        with db.session() as session:
            scope = OrgScope(session, org_scope_id(db, org))
            row, path = ModelRegistry(scope, blobs).bundle_path(version)
            rollout = start_rollout(
                scope,
                blobs,
                load_or_create_hub_key(settings.home),
                group=group,
                archive=path,
                name=f"{row.name} v{row.version}",
                model_version_id=row.id,
                canary_device_id=canary,
                created_by="cli",
            )
            console.print(
                t(
                    "edge.rollout",
                    id=rollout.id,
                    sha=rollout.bundle_sha256[:12],
                    group=group,
                    canary=rollout.canary_device_id,
                )
            )

    @edge_app.command("revoke")
    @friendly_errors
    def revoke_cmd(
        device: str = typer.Argument(..., help="Device id. / 장치 ID."),
        org: str | None = typer.Option(
            None, help="Organisation slug (default: the one 'axhub init' made). / 회사 ID."
        ),
        lang: str | None = lang_option(),
    ) -> None:
        """Refuse a device from now on. / 장치 해지."""
        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import revoke
        from axhub.store.scoped import OrgScope

        _settings, db = _hub()
        with db.session() as session:
            revoke(OrgScope(session, org_scope_id(db, org)), device, "cli")
        console.print(t("edge.revoke.done", id=device))

    app.add_typer(edge_app, name="edge")
