"""ASGI middleware: request ids with access logs, the request body size limit, and uploads
read only for authenticated callers."""

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_api.core.errors import DomainError, problem_response
from crm_api.core.ids import uuid7
from crm_api.core.logging import request_id_var

access_log = logging.getLogger("crm_api.access")
log = logging.getLogger("crm_api")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Honours a sane `X-Request-ID` or makes one, echoes it, and logs the request as JSON."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or str(uuid7())
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, inside the request's context, so the 500 carries its request id
            # (the framework's last-resort handler sits outside this middleware).
            log.exception("unhandled error")
            if responded:
                raise
            response = problem_response(
                500,
                "internal",
                "Something went wrong on our side; quote the request id when reporting it.",
                request_id=request_id,
            )
            await response(scope, receive, send_with_id)
        finally:
            if self.log_requests:
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    text = _header(scope, b"x-request-id")
    return text if text is not None and _VALID_REQUEST_ID.match(text) else None


class PayloadTooLarge(HTTPException):
    """An upload went past its limit while the endpoint read it (a 413 problem)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Uploads here are limited to {limit} bytes.")


class BodySizeLimitMiddleware:
    """Buffers request bodies up to `max_bytes`; anything larger gets a 413 problem. A POST to
    one of `uploads` (path: its own limit, such as a CSV import's) is not buffered: it streams
    through to the endpoint, counted, and a 413 stops it once it passes its limit."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, uploads: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = dict(uploads or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        upload_limit = self.uploads.get(scope["path"]) if scope["method"] == "POST" else None
        if upload_limit is not None:
            if declared is not None and declared > upload_limit:
                await self._reject(scope, receive, send, upload_limit)
                return
            await self.app(scope, _counted(receive, upload_limit), send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send, self.max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send, self.max_bytes)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            "payload-too-large",
            f"Request bodies are limited to {limit} bytes.",
            request_id=request_id_var.get(),
        )
        await response(scope, receive, send)


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive`, raising PayloadTooLarge once the body passes `limit` bytes."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(limit)
        return message

    return counted


def _content_length(scope: Scope) -> int | None:
    text = _header(scope, b"content-length")
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


class AuthenticatedUploadsMiddleware:
    """An upload (a body of many megabytes, parsed and spooled to disk before the endpoint's
    dependencies run) is read only for a caller with a valid API key: anyone else gets 401
    before a byte of it is read. The endpoint still authenticates (from the key cache: no
    second lookup) and checks the caller's role as usual."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Iterable[str],
        authenticate: Callable[[str | None], Awaitable[Any]],
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            try:
                await self.authenticate(_header(scope, b"authorization"))
            except DomainError as error:
                response = problem_response(
                    error.status,
                    error.slug,
                    error.detail,
                    headers=error.headers,
                    request_id=request_id_var.get(),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
