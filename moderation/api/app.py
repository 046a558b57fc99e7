"""The FastAPI application: ``/v1/check``, the review-queue API and the reviewer console.

``create_app(database_url=None, checker=None)`` builds everything around one ``ReviewQueue``; the
checker (rules + classifier + images) loads lazily so the console starts fast and tests can pass a
rules-only checker.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError

from moderation.api.accounts import Accounts
from moderation.api.checkpool import CheckPool
from moderation.api.isolation import RulesProcesses
from moderation.api.limits import DEFAULT_MAX_BODY, BodyLimitMiddleware, SecurityHeadersMiddleware
from moderation.api.settings import Settings
from moderation.queue import QueueError, ReviewQueue

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def _clean_errors(errors: Any) -> Any:
    """Validation errors as plain JSON: pydantic puts exception objects in ``ctx``; drop raw input."""
    cleaned = []
    for err in errors:
        item = {k: v for k, v in err.items() if k not in ("input", "ctx", "url")}
        if "ctx" in err:
            item["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        cleaned.append(item)
    return jsonable_encoder(cleaned)


def create_app(
    database_url: str | None = None,
    checker: Any = None,
    *,
    lease_seconds: int = 120,
    undo_seconds: int = 120,
    max_body: int = DEFAULT_MAX_BODY,
    queue: ReviewQueue | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """Build the app on ``database_url`` (else ``DATABASE_URL``, else ./var/moderation.db).

    ``settings`` (default: ``Settings.from_env()``) size the check pool, the login throttle and so on.
    Swagger UI and ReDoc are off (they load from a CDN); ``/openapi.json`` needs a credential and
    ``/docs`` is a server-rendered reference for signed-in users (``routes_meta``)."""
    settings = settings or Settings.from_env()
    pool = CheckPool(settings.check_workers, max_waiting=settings.check_max_waiting)
    heavy: RulesProcesses | None = None
    if settings.isolate_heavy:
        hard = settings.heavy_timeout_s or 2 * settings.check_budget_s + 2
        heavy = RulesProcesses(pool.heavy_slots, hard_timeout_s=hard)

    def stop_checks() -> None:
        pool.close()  # waiting checks answer 503 at once
        if heavy is not None:
            heavy.close()  # heavy checks in flight end now (their requests get 503)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if heavy is not None:  # load the engine in the children meanwhile; a heavy listing waits for it
            threading.Thread(
                target=_start_quietly, args=(heavy,), name="rules-heavy-start", daemon=True
            ).start()
        _on_stop_signal(stop_checks)
        yield
        stop_checks()

    app = FastAPI(
        title="listing-moderation",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="Advertising-law checks for Chinese e-commerce listings and the review queue.",
    )
    app.state.settings = settings
    app.state.check_pool = pool
    app.state.heavy_processes = heavy
    app.state.queue = queue or ReviewQueue(
        database_url, lease_seconds=lease_seconds, undo_seconds=undo_seconds
    )
    app.state.accounts = Accounts(app.state.queue.db, settings=settings)
    lock = threading.Lock()
    app.state.checker = checker

    def get_checker() -> Any:
        if app.state.checker is None:
            with lock:
                if app.state.checker is None:
                    from moderation.checker import Checker

                    built = Checker()
                    built.warm_up()  # model, scorer thread: here (a worker thread), not on the event loop
                    app.state.checker = built
        return app.state.checker

    app.state.get_checker = get_checker

    @app.exception_handler(QueueError)
    async def queue_error(_: Request, exc: QueueError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail()})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc.errors())})

    @app.exception_handler(DBAPIError)
    async def database_unavailable(_: Request, exc: DBAPIError) -> JSONResponse:
        """A database that is unreachable, restarting or busy past its timeout is the server's state,
        not the client's fault and not a bug: 503 with ``Retry-After`` (a lost connection was already
        retried once where that is safe, ``db.py``). Anything else is a bug and stays a 500."""
        if not _unavailable(exc):
            raise exc
        log.warning("database unavailable: %s", exc.orig)
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
            content={
                "detail": {
                    "code": "database_unavailable",
                    "message": "the database is unavailable; retry shortly",
                }
            },
        )

    from moderation.api import console, routes_check, routes_meta, routes_outbox, routes_queue

    app.include_router(routes_check.router)
    app.include_router(routes_queue.router)
    app.include_router(routes_outbox.router)
    app.include_router(routes_meta.router)
    app.include_router(console.router)
    from moderation.api import routes_images  # image thumbnails by id (issue 14)

    app.include_router(routes_images.router)
    from moderation.api import routes_ocr  # a listing's pictures for the OCR boxes in the console (issue 18)

    app.include_router(routes_ocr.router)
    from moderation.api import routes_sellers  # hold, release, warn a seller (issue 17)

    app.include_router(routes_sellers.router)
    app.mount("/review/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _on_stop_signal(callback: Callable[[], None]) -> None:
    """Run ``callback`` as soon as SIGTERM or SIGINT arrives, before the server's own handler
    (uvicorn's, installed before the app starts): it then waits for in-flight requests, and those
    waiting on a check should get their 503 now rather than when the graceful timeout runs out.
    Only in the main thread (a test client runs the app elsewhere: nothing to do)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            callback()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(sig, handler)


def _start_quietly(heavy: RulesProcesses) -> None:
    try:
        heavy.start()
    except Exception:
        log.exception("could not start the rules processes for heavy listings (they start on first use)")


def _unavailable(exc: DBAPIError) -> bool:
    """A lost or refused connection, or a lock/busy timeout: the database, not the request."""
    from sqlalchemy.exc import OperationalError

    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(exc.orig, psycopg.OperationalError)


#: Environment read by ``app_from_env`` (each uvicorn worker process builds its own app): the
#: variables of ``Settings.serve_db`` and ``Settings.serve_classifier``.
ENV_DATABASE_URL = "MODERATION_SERVE_DB"
ENV_CLASSIFIER = "MODERATION_SERVE_CLASSIFIER"


def app_from_env() -> FastAPI:
    """An app factory for ``uvicorn --factory`` with several worker processes: the database URL and
    whether to load the classifier come from the environment. The checker is loaded and warmed before
    the worker accepts requests, and everything alive after start-up is moved out of the garbage
    collector's reach (``gc.freeze``) so a full collection does not walk it on a request's time."""
    import sys

    from moderation.checker import Checker

    settings = Settings.from_env()
    sys.setswitchinterval(settings.switch_interval_s)
    checker = Checker(classifier=settings.serve_classifier)
    app = create_app(settings.serve_db, checker, settings=settings)
    checker.warm_up()
    gc.collect()
    gc.freeze()
    return app
