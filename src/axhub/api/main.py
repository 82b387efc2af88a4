"""The API application: ``create_app(settings)``.

Mounts one router per resource under ``/api/v1``, installs the one error format and the body
size limit, migrates the database and (by default) starts the in-process job executor.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

import axhub
from axhub.api.deps import AppState
from axhub.api.errors import install_error_handlers
from axhub.api.headers import SecurityHeaders
from axhub.api.limits import BodySizeLimit
from axhub.api.login_guard import SharedLoginGuard
from axhub.api.secrets_setup import seal_passwords
from axhub.api.security import SessionSigner, load_or_create_secret
from axhub.core.settings import Settings, get_settings
from axhub.store.blobs import BlobStore
from axhub.store.db import Database

API_PREFIX = "/api/v1"


def _routers() -> list[APIRouter]:
    from axhub.api.routes import (
        alerting,
        auth,
        data,
        edge,
        federated,
        files,
        jobs,
        keys,
        learn,
        metering,
        models,
        operating,
        ops,
        orgs,
        plant,
        process,
        production,
        readings,
        refused,
        series,
        users,
    )

    return [
        auth.router,
        federated.router,
        orgs.router,
        users.router,
        keys.router,
        plant.sites,
        plant.assets,
        plant.signals,
        readings.router,
        series.router,
        data.uploads,
        data.datasets,
        jobs.router,
        models.router,
        operating.router,
        ops.deployments,
        ops.alerts,
        metering.router,
        production.router,
        files.uploads,
        files.mappings,
        learn.learn,
        learn.events,
        alerting.alert_actions,
        alerting.rules,
        alerting.channels,
        refused.router,
        process.router,
        edge.router,
    ]


def create_app(
    settings: Settings | None = None,
    *,
    executor: Literal["local", "none"] | Any = "local",
    workers: int = 2,
    secure_cookies: bool = True,
    max_upload_bytes: int = 50 * 1024 * 1024,
    max_body_bytes: int = 5 * 1024 * 1024,
    lease_seconds: float = 30.0,
) -> FastAPI:
    """Build the app. ``executor='none'`` leaves jobs to separate worker processes
    (``python -m axhub.jobs.worker``); pass a started executor object to use your own (Ray)."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    db = Database(settings.database_url)
    db.migrate()

    from axhub.jobs.queue import JobQueue

    state = AppState(
        settings=settings,
        db=db,
        blobs=BlobStore(settings.blob_root),
        signer=SessionSigner(load_or_create_secret(settings.home)),
        secure_cookies=secure_cookies,
        max_upload_bytes=max_upload_bytes,
        queue=JobQueue(db, lease_seconds=lease_seconds),
    )
    state.login_guard = SharedLoginGuard(db)  # one sign-in limit across every API process
    seal_passwords(settings, db)  # SMTP passwords at rest: sealed with a key kept outside the DB

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = None
        if executor == "local":
            from axhub.jobs.executors.local import LocalExecutor

            own = LocalExecutor(state.queue, settings, workers=workers).start()
            state.executor = own
        elif executor != "none":
            state.executor = executor
        try:
            yield
        finally:
            if own is not None:
                own.stop()
            state.executor = None

    app = FastAPI(
        title="AX Hub API",
        version=axhub.__version__,
        description="Manufacturing AI platform: plant structure, readings, datasets, jobs, models, alerts. "
        "Authenticate with a session cookie (POST /api/v1/auth/login) or 'Authorization: Bearer axk_...'.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.axhub = state
    install_error_handlers(app)
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX)
    from axhub.api.routes.edge import device_api  # edge agents' protocol (/device/v1, own credential)

    app.include_router(device_api)

    @app.get(f"{API_PREFIX}/health", operation_id="get_health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: no authentication, no data."""
        return {"status": "ok", "version": axhub.__version__}

    app.add_middleware(
        BodySizeLimit,
        default_limit=max_body_bytes,
        upload_limit=max_upload_bytes + 64 * 1024,  # multipart framing around the file
        upload_prefix=f"{API_PREFIX}/uploads",
    )
    # Outermost, so every answer (pages, API, static files, 413s) carries the security headers.
    app.add_middleware(SecurityHeaders, hsts=secure_cookies)
    _check_operation_ids(app)
    from axhub.web import mount_web  # the dashboard: pages at "/", /static, /web/api (not in OpenAPI)

    mount_web(app)
    return app


@dataclass(frozen=True)
class RouteInfo:
    operation_id: str
    methods: frozenset[str]
    path: str


def iter_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API operation as mounted (full path), however FastAPI represents included routers.

    Recent FastAPI keeps included routers as nodes instead of flattening them into
    ``app.routes``; this walks both shapes so that checks (and the security suite) see all.
    """
    found: list[RouteInfo] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(RouteInfo(route.operation_id or "", frozenset(route.methods or ()), route.path))
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                if isinstance(ctx.original_route, APIRoute):
                    methods = getattr(ctx, "methods", None) or ctx.original_route.methods
                    found.append(RouteInfo(ctx.operation_id or "", frozenset(methods or ()), ctx.path))
    return found


def _check_operation_ids(app: FastAPI) -> None:
    """Every route has an explicit, unique operation id (the SDK and dashboard rely on them)."""
    seen: set[str] = set()
    routes = iter_routes(app)
    if len(routes) < 20:
        raise RuntimeError("API routes not found; has FastAPI changed how routers are included?")
    for route in routes:
        if not route.operation_id:
            raise RuntimeError(f"route {route.path} has no operation_id")
        if route.operation_id in seen:
            raise RuntimeError(f"duplicate operation_id {route.operation_id}")
        seen.add(route.operation_id)


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` (used by ``axhub serve``, one per worker process)."""
    import os

    job_workers = int(os.environ.get("AXHUB_SERVE_JOB_WORKERS", "2"))
    app = create_app(
        get_settings(),
        executor="local" if job_workers > 0 else "none",
        workers=max(job_workers, 1),
        secure_cookies=os.environ.get("AXHUB_SERVE_SECURE_COOKIES", "1") != "0",
    )
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Leave everything built at start-up out of every later garbage collection.

    A serving process starts with ~300,000 tracked objects (FastAPI, pydantic, SQLAlchemy,
    pyarrow...) that live as long as it does, and a full collection walks all of them while
    every thread waits: ~0.5 s on a busy 2-core machine. A flood of requests (the abuse
    benchmark's combined attack) allocates fast enough to trigger one every few seconds, and
    each stalled every other tenant's reads; they were what lifted their p99 past 200 ms. Only
    for a process that serves one app (the uvicorn factory), not for tests building many.
    """
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
