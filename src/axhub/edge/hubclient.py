"""The agent's calls to the hub (HTTP, JSON; batches as compressed bodies)."""

from __future__ import annotations

from typing import Any

import httpx

from axhub.edge.buffer import OutBatch

EDGE_PREFIX = "/device/v1"


class HubUnreachable(Exception):
    """No answer, or the hub is failing (5xx): keep buffering and try again later."""


class DeviceRevoked(Exception):
    """The hub refuses this device's credential (revoked or unknown): stop syncing."""


class BatchRefused(Exception):
    """The hub will never take this batch (it is invalid); retrying would not help."""


def _raise_for(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise DeviceRevoked(_message(response))
    if response.status_code >= 500 or response.status_code == 429:
        raise HubUnreachable(f"hub answered {response.status_code}")
    if response.status_code >= 400:
        raise BatchRefused(_message(response))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("error", {}).get("message") or body)
    except ValueError:
        return response.text[:300]


def enrol(hub_url: str, token: str, name: str, agent_version: str, timeout: float = 15) -> dict[str, Any]:
    """Exchange a one-time enrolment token for this device's own credential."""
    try:
        response = httpx.post(
            f"{hub_url.rstrip('/')}{EDGE_PREFIX}/enrol",
            json={"token": token, "name": name, "agent_version": agent_version},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise HubUnreachable(f"cannot reach the hub at {hub_url}: {exc}") from exc
    _raise_for(response)
    return dict(response.json())


class HubClient:
    def __init__(self, hub_url: str, credential: str, timeout: float = 30) -> None:
        self._http = httpx.Client(
            base_url=hub_url.rstrip("/"),
            headers={"Authorization": f"Device {credential}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, f"{EDGE_PREFIX}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnreachable(str(exc)) from exc
        _raise_for(response)
        return response

    def heartbeat(self, status: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/heartbeat", json=status).json())

    def send(self, batch: OutBatch) -> dict[str, Any]:
        response = self._call(
            "POST",
            "/sync",
            content=batch.payload,
            headers={
                "Content-Type": batch.media_type,
                "X-Batch-Id": batch.batch_id,
                "X-Batch-Kind": batch.kind,
                "X-Batch-Rows": str(batch.rows),
            },
        )
        return dict(response.json())

    def bundle(self, sha256: str) -> bytes:
        return self._call("GET", f"/bundles/{sha256}").content
