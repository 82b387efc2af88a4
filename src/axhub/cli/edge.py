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
from axhub.cli._lang import current_lang, lang_option

_TEXTS: dict[str, tuple[str, str]] = {
    "token": (
        "Enrolment token for {name} (group {group}), valid until {until}:",
        "{name} 등록 토큰 (그룹 {group}), {until}까지 유효:",
    ),
    "token.once": ("It is shown only now and works once.", "지금 한 번만 표시되며 한 번만 쓸 수 있습니다."),
    "enrolled": (
        "Enrolled as {id}; hub key fingerprint {fp}.",
        "{id}(으)로 등록했습니다. 허브 키 지문 {fp}.",
    ),
    "fleet": ("Edge devices", "엣지 장치"),
    "col.name": ("device", "장치"),
    "col.group": ("group", "그룹"),
    "col.online": ("online", "연결"),
    "col.sync": ("last sync", "마지막 동기화"),
    "col.depth": ("buffered", "버퍼"),
    "col.bundle": ("bundle", "모델 번들"),
    "col.agent": ("agent", "에이전트"),
    "col.cpu": ("CPU %", "CPU %"),
    "col.rss": ("memory MB", "메모리 MB"),
    "yes": ("yes", "예"),
    "no": ("no", "아니오"),
    "revoked": ("revoked", "해지됨"),
    "rollout": (
        "Rollout {id}: signed bundle {sha} to group {group}, canary {canary}.",
        "배포 {id}: 서명된 번들 {sha}을(를) 그룹 {group}에 보냄, 먼저 {canary}.",
    ),
    "revoke.done": ("Device {id} revoked.", "장치 {id}을(를) 해지했습니다."),
}


def _t(key: str, **params: Any) -> str:
    en, ko = _TEXTS[key]
    return (ko if current_lang() == "ko" else en).format(**params)


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
        name: str = typer.Argument(..., help="The device's name."),
        group: str = typer.Option("default", help="Device group (rollouts go to a group)."),
        hours: float = typer.Option(72, help="Valid for this many hours."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Issue a one-time enrolment token for a device (run on the hub)."""
        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import issue_token
        from axhub.store.scoped import OrgScope

        _settings, db = _hub()
        with db.session() as session:
            token, row = issue_token(
                OrgScope(session, org_scope_id(db, org)), name, group, created_by="cli", ttl_hours=hours
            )
            until = row.expires_at.isoformat(timespec="minutes")
        console.print(_t("token", name=name, group=group, until=until))
        console.print(token, markup=False)
        console.print(_t("token.once"))

    @edge_app.command("enrol")
    @friendly_errors
    def enrol_cmd(
        hub: str = typer.Option(..., help="The hub's URL, e.g. https://hub.example:8000"),
        token: str = typer.Option(..., help="The one-time token from 'axhub edge token'."),
        home: Path = typer.Option(Path("axhub-edge"), help="The agent's directory on this device."),
        name: str = typer.Option("edge", help="This device's name."),
        lang: str | None = lang_option(),
    ) -> None:
        """Exchange the token for this device's own credential (run on the device)."""
        from axhub.edge.agent import enrol_device
        from axhub.registry.signing import fingerprint

        identity = enrol_device(home, hub, token, name)
        console.print(_t("enrolled", id=identity.device_id, fp=fingerprint(identity.hub_public_key.encode())))

    @edge_app.command("run")
    def run_cmd(
        home: Path = typer.Option(Path("axhub-edge"), help="The agent's directory on this device."),
        duration: float | None = typer.Option(None, help="Stop after this many seconds."),
    ) -> None:
        """Run the edge agent (connectors, buffer, scoring, alerts, sync, updates)."""
        from axhub.edge.agent import main

        raise typer.Exit(
            main(["--home", str(home), *([] if duration is None else ["--duration", str(duration)])])
        )

    @edge_app.command("status")
    @friendly_errors
    def status_cmd(
        home: Path | None = typer.Option(None, help="Show this device's own status instead of the fleet."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        lang: str | None = lang_option(),
    ) -> None:
        """The fleet as the hub sees it (on the hub), or one device's own status (--home)."""
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
        table = Table(title=_t("fleet"))
        for col in ("name", "group", "online", "sync", "depth", "bundle", "agent", "cpu", "rss"):
            table.add_column(_t(f"col.{col}"))
        for d in devices:
            online = _t("revoked") if d["revoked"] else _t("yes" if d["online"] else "no")
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
        version: str = typer.Argument(..., help="Model version id to send."),
        group: str = typer.Option(..., help="Device group."),
        canary: str | None = typer.Option(None, help="Canary device id (default: the group's oldest)."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Sign a model version's bundle with the hub key and roll it out, canary first."""
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
                _t(
                    "rollout",
                    id=rollout.id,
                    sha=rollout.bundle_sha256[:12],
                    group=group,
                    canary=rollout.canary_device_id,
                )
            )

    @edge_app.command("revoke")
    @friendly_errors
    def revoke_cmd(
        device: str = typer.Argument(..., help="Device id."),
        org: str | None = typer.Option(None, help="Organisation slug (default: settings)."),
        lang: str | None = lang_option(),
    ) -> None:
        """Refuse a device from now on."""
        from axhub.cli._where import org_scope_id
        from axhub.fleet.service import revoke
        from axhub.store.scoped import OrgScope

        _settings, db = _hub()
        with db.session() as session:
            revoke(OrgScope(session, org_scope_id(db, org)), device, "cli")
        console.print(_t("revoke.done", id=device))

    app.add_typer(edge_app, name="edge")
