"""``axhub serve``: the API (and later the dashboard) on 127.0.0.1:8000 by default."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)"),
        port: int = typer.Option(8000, help="TCP port"),
        workers: int = typer.Option(1, help="API processes (uvicorn workers)"),
        job_workers: int = typer.Option(2, help="In-process job worker threads per API process (0: none)"),
        insecure_cookies: bool = typer.Option(
            False, help="Send session cookies over plain HTTP too (only for http:// on a LAN)"
        ),
        operator_email: str = typer.Option(
            "",
            help="Create this platform operator on first start; the password comes from "
            "AXHUB_OPERATOR_PASSWORD or a prompt (never the command line, which other users can read)",
        ),
    ) -> None:
        """Serve the AX Hub API; migrates the database first. / API 서버 실행."""
        import os
        import sys

        import uvicorn

        from axhub.cli._context import open_database
        from axhub.core.errors import ConflictError

        db = open_database()  # migrate once, before workers start
        operator_password = os.environ.pop("AXHUB_OPERATOR_PASSWORD", "")
        if operator_email and not operator_password:
            if not sys.stdin.isatty():
                typer.echo("set AXHUB_OPERATOR_PASSWORD or run in a terminal to be asked", err=True)
                raise typer.Exit(2)
            operator_password = typer.prompt("Operator password", hide_input=True, confirmation_prompt=True)
        if operator_email and operator_password:
            from axhub.api.bootstrap import create_operator

            try:
                create_operator(db, operator_email, operator_password)
                typer.echo(f"created platform operator {operator_email}")
            except ConflictError:
                pass
        db.dispose()
        os.environ["AXHUB_SERVE_JOB_WORKERS"] = str(job_workers)
        os.environ["AXHUB_SERVE_SECURE_COOKIES"] = "0" if insecure_cookies else "1"
        uvicorn.run(
            "axhub.api.main:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
