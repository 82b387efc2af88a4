"""A small, typed client for the AX Hub API (httpx).

Authenticate with an API key (``AxHubClient(url, api_key="axk_...")``) or sign in with a
password (``client.login(email, password)``: session cookie + CSRF header handled here).
Errors come back as :class:`AxHubApiError` with the server's code, message and hint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1"
TERMINAL = {"succeeded", "failed", "cancelled"}


class AxHubApiError(Exception):
    def __init__(self, status: int, code: str, message: str, hint: str = "", details: Any = None) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details


class AxHubClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._csrf: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AxHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self._csrf and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            headers["X-CSRF-Token"] = self._csrf
        response = self.http.request(method, API + path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def iter_pages(self, path: str, page_size: int = 200, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.get(path, limit=page_size, offset=offset, **params)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    # ------------------------------------------------------------------ accounts
    def login(self, email: str, password: str) -> dict[str, Any]:
        me = self.post("/auth/login", {"email": email, "password": password})
        self._csrf = me.get("csrf_token")
        self._keep_cookies_on_plain_http()
        return me

    def _keep_cookies_on_plain_http(self) -> None:
        """The hub marks its session cookies ``Secure`` (right for browsers and for TLS), and a
        cookie jar then never sends them to ``http://127.0.0.1``: every call after the login
        would be refused. A script talking to its own hub over plain HTTP is this client's
        choice, so here the session cookies are kept for the hub we signed in to."""
        if self.http.base_url.scheme != "http":
            return
        jar = self.http.cookies.jar
        for cookie in [c for c in jar if c.secure]:
            jar.clear(cookie.domain, cookie.path, cookie.name)
            self.http.cookies.set(cookie.name, cookie.value or "", domain=cookie.domain, path=cookie.path)

    def me(self) -> dict[str, Any]:
        return self.get("/auth/me")

    def create_key(self, name: str, scopes: list[str], role: str | None = None) -> dict[str, Any]:
        return self.post("/keys", {"name": name, "scopes": scopes, "role": role})

    def users(self) -> list[dict[str, Any]]:
        return list(self.iter_pages("/users"))

    def create_user(self, email: str, password: str, role: str = "viewer", name: str = "") -> dict[str, Any]:
        body = {"email": email, "password": password, "role": role, "name": name}
        return self.post("/users", body)

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self.iter_pages("/keys"))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/keys/{key_id}")

    # ------------------------------------------------------------------ plant and data
    def assets(self, site_id: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_pages("/assets", site_id=site_id))

    def readings(self, asset_id: str, **params: Any) -> dict[str, Any]:
        return self.get(f"/assets/{asset_id}/readings", **params)

    def upload(self, path: str | Path, dataset_name: str | None = None) -> dict[str, Any]:
        path = Path(path)
        data = {"dataset_name": dataset_name} if dataset_name else {}
        with path.open("rb") as fh:
            return self.request("POST", "/uploads", files={"file": (path.name, fh)}, data=data)

    def create_dataset(self, name: str, spec: dict[str, Any], kind: str = "table") -> dict[str, Any]:
        return self.post("/datasets", {"name": name, "kind": kind, "spec": spec})

    # ------------------------------------------------------------------ jobs
    def submit_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.post("/jobs", spec)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}")

    def jobs(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.get("/jobs", state=state, limit=limit)["items"]

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.post(f"/jobs/{job_id}/cancel")

    def wait_job(self, job_id: str, timeout: float = 3600, poll: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(poll)

    def job_events(self, job_id: str, timeout: float = 3600) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs from the job's server-sent event stream, until it ends."""
        with self.http.stream(
            "GET", f"{API}/jobs/{job_id}/events", params={"timeout": timeout}, timeout=None
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line.split(":", 1)[1])

    # ------------------------------------------------------------------ models
    def models(self, name: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_pages("/models", name=name, stage=stage))

    def promote(self, version_id: str, stage: str = "production") -> dict[str, Any]:
        return self.post(f"/models/{version_id}/stage", {"stage": stage})

    def deploy(
        self,
        version_id: str,
        asset_id: str | None = None,
        *,
        edge_device_id: str | None = None,
        allow_below_baseline: bool = False,
    ) -> dict[str, Any]:
        """Deploy a version (hub scoring on ``asset_id``, or an edge device). A version that does
        not beat its trivial baseline is refused (409) unless ``allow_below_baseline``."""
        body = {
            "model_version_id": version_id,
            "asset_id": asset_id,
            "target": "edge" if edge_device_id else "hub",
            "edge_device_id": edge_device_id,
            "allow_below_baseline": allow_below_baseline,
        }
        return self.post("/deployments", body)

    def compare(self, version_ids: list[str]) -> dict[str, Any]:
        return self.request("GET", "/models/compare", params=[("ids", v) for v in version_ids])

    def download_bundle(self, version_id: str, target: str | Path) -> Path:
        data = self.request("GET", f"/models/{version_id}/bundle")
        target = Path(target)
        if target.is_dir():
            target = target / f"{version_id}.zip"
        target.write_bytes(data)
        return target

    # ------------------------------------------------------------------ alerts
    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/alerts", **filters)["items"]

    def acknowledge(self, alert_id: str) -> dict[str, Any]:
        return self.post(f"/alerts/{alert_id}/ack")


def _error(response: httpx.Response) -> AxHubApiError:
    try:
        err = response.json()["error"]
        return AxHubApiError(
            response.status_code, err["code"], err["message"], err.get("hint", ""), err.get("details")
        )
    except (ValueError, KeyError, TypeError):
        return AxHubApiError(response.status_code, "http_error", response.text[:300])


def credentials_path(home: Path | None = None) -> Path:
    base = home or Path(os.environ.get("AXHUB_HOME", Path.home() / ".axhub"))
    return Path(base).expanduser() / "credentials.json"


def save_credentials(url: str, api_key: str, home: Path | None = None) -> Path:
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "api_key": api_key}))
    path.chmod(0o600)
    return path


def load_credentials(home: Path | None = None) -> tuple[str, str] | None:
    path = credentials_path(home)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return str(data["url"]), str(data["api_key"])
