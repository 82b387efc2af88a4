"""What was refused, with reasons, per source: connector dead letters and file rejects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from axhub.api.deps import ReadScope, State
from axhub.api.errors import ERROR_RESPONSES, request_lang
from axhub.api.schemas.common import Paging, paging
from axhub.api.schemas.files import ProblemOut
from axhub.api.schemas.refused import DeadLetterOut, DeadLetterPage, FileRejectsOut, SourceSummary
from axhub.serve import refused as refused_data

router = APIRouter(tags=["refused"], responses=ERROR_RESPONSES)
PAYLOAD_SHOWN = 2000


@router.get("/refused", operation_id="list_refused_sources", response_model=list[SourceSummary])
def list_refused_sources(scope: ReadScope, state: State) -> list[SourceSummary]:
    """Every source that refused something (connections and files), newest first."""
    return [
        SourceSummary(source=s, kind=k, refused=n, last_at=t)
        for s, k, n, t in refused_data.summary(state.settings, scope)
    ]


@router.get("/deadletters", operation_id="list_dead_letters", response_model=DeadLetterPage)
def list_dead_letters(
    scope: ReadScope,
    state: State,
    pg: Annotated[Paging, Depends(paging)],
    source: Annotated[str | None, Query(max_length=500)] = None,
) -> DeadLetterPage:
    """Payloads a connection sent that could not be stored, with the reason, newest first."""
    letters = list(refused_data.dead_letters(state.settings, scope.org_id, source))
    letters.reverse()
    page = letters[pg.offset : pg.offset + pg.limit]
    return DeadLetterPage(
        items=[
            DeadLetterOut(
                received_at=d.received_at,
                source=d.source,
                origin=d.origin,
                reason=d.reason,
                payload=d.payload[: PAYLOAD_SHOWN * 4].decode("utf-8", errors="replace")[:PAYLOAD_SHOWN],
                payload_bytes=len(d.payload),
            )
            for d in page
        ],
        total=len(letters),
        limit=pg.limit,
        offset=pg.offset,
    )


@router.get("/file-rejects", operation_id="list_file_rejects", response_model=list[FileRejectsOut])
def list_file_rejects(
    request: Request,
    scope: ReadScope,
    source: Annotated[str | None, Query(max_length=500, description="A file name")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[FileRejectsOut]:
    """Files (uploads and CLI ingests) with rejected rows, newest first, with the first problems."""
    lang = request_lang(request)
    return [
        FileRejectsOut(
            ingest_run_id=item.run.id,
            source=item.source,
            started_at=item.run.started_at,
            rows_read=item.run.rows_read,
            points_written=item.run.points_written,
            rows_rejected=item.run.rows_rejected,
            problems=[
                ProblemOut(file=p.file, row=p.row, field=p.field, problem=p.text(lang), code=p.code or None)
                for p in item.problems
            ],
        )
        for item in refused_data.file_rejects(scope, source, limit)
    ]
