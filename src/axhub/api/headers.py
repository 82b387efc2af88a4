"""Security headers on every response (pages, API, static files).

* ``Content-Security-Policy``: scripts only from this server (no inline script, no eval), no
  plugins, forms post only here, and no framing (``frame-ancestors 'none'``, clickjacking).
  Styles allow inline because plotly.js styles its charts with injected ``<style>`` elements.
  The API's own ``/docs`` page (Swagger UI from a CDN, inline bootstrap) gets only the framing
  rule, so it keeps working.
* ``X-Content-Type-Options: nosniff``: a served file is never re-interpreted as script or HTML.
* ``Referrer-Policy: same-origin``: page addresses (asset names, ids) never leave in Referer.
* ``Strict-Transport-Security`` when the server sends Secure cookies (it is behind HTTPS).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = "frame-ancestors 'none'"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool = True, docs_paths: tuple[str, ...] = ("/docs",)) -> None:
        self.app = app
        self.hsts = hsts
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"].startswith(self.docs_paths) else CSP
        extra = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if self.hsts:
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
