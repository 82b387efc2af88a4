"""Platform commands over the API: ``axhub login``, ``axhub jobs ...``, ``axhub models ...``,
``axhub users ...``, ``axhub keys ...``. They talk to a running hub (``axhub serve``) with the
API key saved by ``axhub login``."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import typer


def _client() -> Any:
    from axhub.client import AxHubClient, load_credentials

    creds = load_credentials()
    if creds is None:
        typer.secho("not signed in: run 'axhub login' first / 먼저 'axhub login'", fg="red", err=True)
        raise typer.Exit(1)
    return AxHubClient(creds[0], api_key=creds[1])


def _run(fn: Any) -> Any:
    from axhub.client import AxHubApiError

    try:
        return fn()
    except AxHubApiError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("login")
    def login(
        url: str = typer.Option("http://127.0.0.1:8000", help="The hub's address"),
        email: str = typer.Option(..., prompt=True, help="Your e-mail"),
        password: str = typer.Option(..., prompt=True, hide_input=True),
    ) -> None:
        """Sign in and save an API key for this computer. / 로그인."""
        from axhub.client import AxHubClient, save_credentials

        with AxHubClient(url) as client:
            me = _run(lambda: client.login(email, password))
            scopes = {"viewer": ["read"], "engineer": ["read", "write", "ingest"]}.get(
                me["role"], ["read", "write", "ingest", "admin"]
            )
            key = _run(lambda: client.create_key(f"cli@{socket.gethostname()}", scopes))
        path = save_credentials(url, key["key"])
        typer.echo(f"signed in to {me['org']['name']} as {me['role']}; key saved in {path}")

    jobs = typer.Typer(help="Jobs on shared compute. / 작업.", no_args_is_help=True)
    app.add_typer(jobs, name="jobs")

    @jobs.command("submit")
    def submit(
        spec_file: Path = typer.Argument(None, help="JSON job spec (or use the options below)"),
        estimator: str = typer.Option("", help="Train this estimator, e.g. anomaly/mspc"),
        dataset: str = typer.Option("", help="Dataset id"),
        params: str = typer.Option("{}", help="Estimator parameters as JSON"),
        watch: bool = typer.Option(False, help="Follow progress until it ends"),
    ) -> None:
        """Submit a job (train by default)."""
        if spec_file:
            spec = json.loads(spec_file.read_text())
        else:
            spec = {
                "kind": "train",
                "estimator": estimator,
                "dataset_id": dataset,
                "params": json.loads(params),
            }
        client = _client()
        job = _run(lambda: client.submit_job(spec))
        typer.echo(job["id"])
        if watch:
            _watch(client, job["id"])

    def _watch(client: Any, job_id: str) -> None:
        from rich.progress import Progress

        with Progress() as progress:
            task = progress.add_task(job_id, total=1.0)
            for event, data in client.job_events(job_id):
                if event == "job":
                    progress.update(task, completed=data["progress"], description=f"{job_id} {data['state']}")
                elif event == "log":
                    progress.console.print(f"[dim]{data['ts']}[/] {data['message']}")
        final = client.job(job_id)
        typer.echo(f"{job_id}: {final['state']} {json.dumps(final['result']) if final['result'] else ''}")
        if final["state"] != "succeeded":
            raise typer.Exit(1)

    @jobs.command("watch")
    def watch_cmd(job_id: str) -> None:
        """Follow a job's progress and logs live."""
        _watch(_client(), job_id)

    @jobs.command("list")
    def list_jobs(
        state: str = typer.Option(None, help="queued, running, succeeded, failed, cancelled"),
    ) -> None:
        """Recent jobs of your organisation."""
        rows = _run(lambda: _client().jobs(state=state))
        _table(rows, ["id", "kind", "state", "progress", "attempts", "created_at"])

    @jobs.command("cancel")
    def cancel(job_id: str) -> None:
        """Cancel a job."""
        job = _run(lambda: _client().cancel_job(job_id))
        typer.echo(f"{job_id}: {job['state']}{' (stopping)' if job['cancel_requested'] else ''}")

    models = typer.Typer(help="Model registry. / 모델 레지스트리.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models(name: str = typer.Option(None), stage: str = typer.Option(None)) -> None:
        """Model versions with their stage and metrics."""
        rows = _run(lambda: _client().models(name=name, stage=stage))
        for row in rows:
            row["metrics"] = ", ".join(
                f"{k}={v:.3g}" for k, v in row["metrics"].items() if isinstance(v, float)
            )
            verdict = row.get("beats_baseline")
            row["beats_baseline"] = "not compared" if verdict is None else ("yes" if verdict else "NO")
        _table(rows, ["id", "name", "version", "estimator", "stage", "beats_baseline", "metrics"])

    @models.command("deploy")
    def deploy(
        version_id: str,
        asset: str = typer.Option(None, help="asset id for hub scoring / 설비 ID"),
        edge_device: str = typer.Option(None, help="edge device id / 엣지 장치 ID"),
        allow_below_baseline: bool = typer.Option(
            False,
            "--allow-below-baseline",
            help="deploy even if it does not beat its trivial baseline / 기준선 미달이어도 배포",
        ),
    ) -> None:
        """Deploy a version; one below its trivial baseline needs --allow-below-baseline."""
        row = _run(
            lambda: _client().deploy(
                version_id, asset, edge_device_id=edge_device, allow_below_baseline=allow_below_baseline
            )
        )
        typer.echo(f"deployed {version_id}: {row['id']}")

    @models.command("promote")
    def promote(version_id: str, stage: str = typer.Option("production")) -> None:
        """Move a version to production (archives the previous one), or to another stage."""
        row = _run(lambda: _client().promote(version_id, stage))
        typer.echo(f"{row['name']} v{row['version']}: {row['stage']}")

    @models.command("download")
    def download(version_id: str, target: Path = typer.Option(Path("."), help="File or folder")) -> None:
        """Download a version's bundle (zip)."""
        typer.echo(str(_run(lambda: _client().download_bundle(version_id, target))))

    users = typer.Typer(help="Users of your organisation (administrators). / 사용자.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("list")
    def list_users() -> None:
        """Users of your organisation."""
        _table(_run(lambda: _client().users()), ["id", "email", "role", "is_active"])

    @users.command("add")
    def add_user(
        email: str,
        role: str = typer.Option("viewer", help="admin, approver, engineer or viewer"),
        password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    ) -> None:
        """Add a user to your organisation (the password is asked for)."""
        row = _run(lambda: _client().create_user(email, password, role))
        typer.echo(f"{row['id']} {row['email']} {row['role']}")

    keys = typer.Typer(help="API keys. / API 키.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("list")
    def list_keys() -> None:
        """API keys of your organisation (the secrets are never shown again)."""
        _table(_run(lambda: _client().list_keys()), ["id", "name", "prefix", "scopes", "role", "revoked_at"])

    @keys.command("create")
    def create_key(
        name: str,
        scope: list[str] = typer.Option(["read"], help="read, write, ingest, admin (repeat)"),
    ) -> None:
        """Create a key (e.g. --scope ingest for a gateway); the secret is printed once."""
        row = _run(lambda: _client().create_key(name, list(scope)))
        typer.echo(row["key"])

    @keys.command("revoke")
    def revoke(key_id: str) -> None:
        """Revoke an API key: it stops working at once."""
        row = _run(lambda: _client().revoke_key(key_id))
        typer.echo(f"{row['id']} revoked at {row['revoked_at']}")
