"""Small helpers shared by the routers (paging, partial updates, SSE framing)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel

from axhub.api.schemas.common import Page, Paging
from axhub.store.models import Base
from axhub.store.scoped import OrgScope

T = TypeVar("T", bound=Base)
OutT = TypeVar("OutT", bound=BaseModel)


def page_of(
    scope: OrgScope,
    model: type[T],
    out: type[OutT],
    paging: Paging,
    *,
    order_by: Any = None,
    **filters: Any,
) -> Page[OutT]:
    filters = {k: v for k, v in filters.items() if v is not None}
    rows = scope.list(model, order_by=order_by, limit=paging.limit, offset=paging.offset, **filters)
    return Page[out](  # type: ignore[valid-type]
        items=[out.model_validate(r) for r in rows],
        total=scope.count(model, **filters),
        limit=paging.limit,
        offset=paging.offset,
    )


def apply_update(row: Base, body: BaseModel) -> None:
    """Copy the fields the client actually sent (PATCH semantics)."""
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(row, key, value)


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, default=str, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
