"""ASGI middleware: refuse oversized uploads before reading them, and set security headers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from neurotriage.web.render import error_page

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small form fields around the file
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' blob: data:; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
# FastAPI's docs page starts Swagger UI with an inline script.
DOCS_PATHS = ("/api/docs",)
# The app's own scripts and styles may be cached; every other answer may carry patient data.
STATIC_PATHS = ("/static/",)
HSTS = b"max-age=31536000"


class UploadLimit:
    """Refuse a request body over the limit from its Content-Length, without reading it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 (or 411 without a length) for bodies the app must not read."""
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        request = Request(scope)
        if length is None and headers.get(b"transfer-encoding"):
            message = "uploads must state their size (Content-Length)"
            return await error_page(request, 411, "Upload refused", message)(scope, receive, send)
        if length is not None and (not length.isdigit() or int(length) > self.limit + FORM_OVERHEAD):
            message = f"the upload is larger than the limit of {self.limit:,} bytes; nothing was stored"
            return await error_page(request, 413, "Upload refused", message)(scope, receive, send)
        return await self.app(scope, receive, send)


class SecurityHeaders:
    """No sniffing, no framing by other sites, no referrers out, a strict content policy, nothing but static
    files kept in caches, and HTTPS only from then on once a browser reached the app over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to every HTTP response that does not set its own policy."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"].startswith(DOCS_PATHS)
        static = scope["path"].startswith(STATIC_PATHS)
        # The request's own scheme; behind a proxy, uvicorn's --proxy-headers sets it from X-Forwarded-Proto.
        https = scope.get("scheme") == "https"

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                         (b"x-frame-options", b"SAMEORIGIN")]  # fmt: skip
                if not docs and b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                if https:
                    extra.append((b"strict-transport-security", HSTS))
                message["headers"] = headers + [h for h in extra if h[0] not in names]
            await send(message)

        return await self.app(scope, receive, send_with_headers)
