"""The web dashboard: server-rendered pages (Jinja2), small scripts, plotly.js from the ``plotly``
Python package, Korean and English.

``mount_web(app)`` adds the pages at ``/``, the static files at ``/static`` and the dashboard's
few page-specific JSON/SSE endpoints at ``/web/api``; the API's app factory calls it. Every page
and endpoint authenticates with the API's own dependencies and reads through ``OrgScope``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from axhub.web.session import LoginRequired, login_redirect

STATIC_DIR = Path(__file__).with_name("static")


def plotly_js_path() -> Path | None:
    """plotly.min.js as shipped inside the ``plotly`` PyPI package (never committed here)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def mount_web(app: FastAPI) -> None:
    from axhub.web.actions import router as actions_router
    from axhub.web.edge_pages import router as edge_router
    from axhub.web.federated_pages import router as federated_router
    from axhub.web.metering_page import router as metering_router
    from axhub.web.owndata_pages import router as owndata_router
    from axhub.web.pages import router as pages_router
    from axhub.web.performance import router as performance_router
    from axhub.web.process_pages import router as process_router

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        path = plotly_js_path()
        if path is None:
            return Response(
                "/* plotly is not installed: pip install plotly */",
                media_type="text/javascript",
                status_code=404,
            )
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
        )

    async def _to_login(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return login_redirect(exc)

    app.add_exception_handler(LoginRequired, _to_login)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(actions_router)
    app.include_router(metering_router)
    app.include_router(owndata_router)
    app.include_router(pages_router)
    app.include_router(performance_router)
    app.include_router(process_router)
    app.include_router(federated_router)
    app.include_router(edge_router)
