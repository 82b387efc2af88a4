"""Schemathesis against a real server process (uvicorn on loopback): no operation answers 500.

The in-process run (test_api_schemathesis.py) sees what the app does; this one also sees what a
client sees over a socket (commit-before-respond, middleware order, headers, body limits).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis not installed (pip install -e '.[dev]')"
)

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from _live import Live, live_server  # noqa: E402


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home: Path = tmp_path_factory.mktemp("schemathesis-live")
    with live_server(home, f"sqlite:///{home / 'meta.db'}") as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(live: Live) -> object:
    loaded = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    # Streams stay open by design (tested in test_service_live / test_jobs_executors).
    return loaded.exclude(operation_id=["stream_job_events", "stream_alerts"])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_over_a_socket(case: schemathesis.Case, live: Live) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {live.keys['a_admin']}"}
    response = case.call(base_url=live.url)
    case.validate_response(response, checks=[not_a_server_error])
