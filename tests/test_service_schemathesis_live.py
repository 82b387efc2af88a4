"""Schemathesis against a real server process (uvicorn on loopback): no operation answers 500.

The in-process run (test_api_schemathesis.py) sees what the app does; this one also sees what a
client sees over a socket (commit-before-respond, middleware order, headers, body limits). The
server starts when the module is collected (the schema is read from it) and stops at exit.
"""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis not installed (pip install -e '.[dev]')"
)

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from _live import live_server  # noqa: E402

_HOME = Path(tempfile.mkdtemp(prefix="axhub-schemathesis-live-"))
_SERVER = live_server(_HOME, f"sqlite:///{_HOME / 'meta.db'}")
_LIVE = _SERVER.__enter__()
atexit.register(_SERVER.__exit__, None, None, None)
schema = schemathesis.openapi.from_url(f"{_LIVE.url}/api/v1/openapi.json")
# Streams stay open by design (tested in test_service_live / test_jobs_executors).
schema = schema.exclude(operation_id=["stream_job_events", "stream_alerts"])


@schema.parametrize()
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_over_a_socket(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_LIVE.keys['a_admin']}"}
    response = case.call(base_url=_LIVE.url)
    case.validate_response(response, checks=[not_a_server_error])
