"""The one place where errors become HTTP answers: {"success": false, "error": {code, message}}."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from watcher.db.errors import transient_db_error
from watcher.errors import DatabaseDown, ServerError, WatcherError

log = structlog.get_logger("watcher.api")

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "INVALID_REQUEST",
    413: "INVALID_REQUEST",
    415: "INVALID_REQUEST",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"code": code, "message": message}},
        status_code=status,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(WatcherError)
    async def _watcher(_: Request, exc: WatcherError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return error_response(400, "INVALID_REQUEST", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(
            exc.status_code, "SERVER_ERROR" if exc.status_code >= 500 else "INVALID_REQUEST"
        )
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # The client hung up before sending its whole body: nothing to answer, nothing wrong.
        log.info("api.client_disconnected", route=route_of(request))
        return Response(status_code=400)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # Handled here rather than as any Exception: Starlette re-raises those after the
        # 500 (a second traceback in the log); an outage is not a bug, it gets one line.
        if not transient_db_error(exc):
            return _server_error(request)
        log.warning(
            "api.database_unavailable", route=route_of(request), error=str(exc).splitlines()[0]
        )
        err = DatabaseDown()
        return error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _server_error(request)


def route_of(request: Request) -> str:
    """The route template (`/pay/{payment_id}`), never the path itself: a path can carry a
    credential (the bank service's webhook token) and is the client's to fill."""
    route = getattr(request.scope.get("route"), "path", None)
    return route if isinstance(route, str) else "unmatched"


def _server_error(request: Request) -> JSONResponse:
    log.exception("unhandled_error", route=route_of(request))
    err = ServerError()
    return error_response(err.status, err.code, err.message)
