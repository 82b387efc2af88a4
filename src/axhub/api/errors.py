"""One error format for every failure: ``{"error": {"code", "message", "hint", "details"}}``.

Validation errors, unknown routes, 401/403/404/405/413 and unexpected crashes all come out in
this shape, so clients (the SDK, the dashboard, curl users) parse one thing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from axhub.core.errors import (
    AxHubError,
    ConflictError,
    InputValidationError,
    NotFoundError,
    PermissionDeniedError,
)
from axhub.core.messages import Lang, lang_from_accept, normalize_lang
from axhub.registry.bundle import BundleError

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. 'not_found'")
    message: str
    hint: str = ""
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(AxHubError):
    """An error with an explicit HTTP status (authentication, CSRF, limits...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str = "",
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.details = details
        self.headers = headers


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal",
}

#: Responses every route may give, documented in the OpenAPI spec with the one error schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code.replace("_", " ")}
    for status, code in _STATUS_CODES.items()
    if status in (401, 403, 404, 409, 413, 422, 429)
}


def error_json(
    status: int,
    code: str,
    message: str,
    hint: str = "",
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "hint": hint, "details": details}}
    headers = {**({"WWW-Authenticate": "Bearer"} if status == 401 else {}), **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _status_of(exc: AxHubError) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, ConflictError):
        return 409, "conflict"
    if isinstance(exc, PermissionDeniedError):
        return 403, "forbidden"
    if getattr(exc, "too_large", False):
        return 413, "payload_too_large"
    return 422, "invalid_input"


def _jsonable_errors(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def request_lang(request: Request) -> Lang:
    """The language of a request's messages: ``?lang=ko|en``, else ``Accept-Language``, else English."""
    explicit = request.query_params.get("lang")
    if explicit:
        return normalize_lang(explicit)
    return lang_from_accept(request.headers.get("accept-language"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AxHubError)
    async def _axhub(request: Request, exc: AxHubError) -> JSONResponse:
        status, code = _status_of(exc)
        details: Any = getattr(exc, "details", None)
        message = str(exc.args[0]) if exc.args else str(exc)
        hint = exc.hint
        if isinstance(exc, InputValidationError):
            lang = request_lang(request)
            message, hint = exc.render(lang)
            code = "file_refused" if exc.whole_file else code
            details = [
                {
                    "file": p.file,
                    "row": p.row,
                    "field": p.field,
                    "problem": p.text(lang),
                    "code": p.code or None,
                }
                for p in exc.problems
            ]
        elif isinstance(exc, BundleError):
            lang = request_lang(request)
            message, hint = exc.render(lang)
            details = [
                {"file": p.file, "problem": p.text(lang), "code": p.code or None} for p in exc.problems
            ]
        headers = getattr(exc, "headers", None)
        return error_json(status, code, message, hint, details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _jsonable_errors(list(exc.errors()))
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return error_json(
            422,
            "validation_error",
            f"invalid request: {where}: {first['msg']}" if where else f"invalid request: {first['msg']}",
            "check the field named in details against the API documentation (/docs)",
            details,
        )

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError) -> JSONResponse:
        details = _jsonable_errors(list(exc.errors()))
        return error_json(
            422, "validation_error", f"invalid input: {exc.error_count()} problem(s)", "see details", details
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return error_json(
            409, "conflict", "this conflicts with an existing record (duplicate name?)", "choose another name"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_json(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_json(500, "internal", "internal error; it was logged", "try again or report it")
