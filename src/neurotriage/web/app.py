"""The FastAPI application: middleware, error pages, routers, static files, background jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event
from starlette.middleware.sessions import SessionMiddleware

from neurotriage import NOTICE, __version__
from neurotriage.clinical.db import engine_for, transaction
from neurotriage.errors import Forbidden, NotFound, UserError
from neurotriage.maintenance.sweep import staging_roots, sweep
from neurotriage.web.auth import CsrfFailed, LoginRequired, ensure_admin
from neurotriage.web.jobs import JobRunner
from neurotriage.web.middleware import SecurityHeaders, UploadLimit
from neurotriage.web.pacs_results import ResultsSender
from neurotriage.web.render import error_page, no_access_page
from neurotriage.web.repeat_reads import RepeatReads
from neurotriage.web.routes import (
    account,
    admin,
    api,
    audit,
    auth,
    dicom,
    downloads,
    erase,
    findings_api,
    jobs,
    patients,
    reports,
)
from neurotriage.web.settings import WebSettings, load_web_settings
from neurotriage.web.throttle import LoginThrottle
from neurotriage.web.write_gate import WriteGate

STATIC = Path(__file__).parent / "static"
SESSION_HOURS = 8
# A diagnosis stores its results and writes its report inside one transaction; on SQLite other
# writers (page views write audit rows) wait for it rather than fail after the default 5 s.
SQLITE_BUSY_MS = 60_000


def _sqlite_busy_timeout(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")


def _wait_longer_for_sqlite(url: str) -> None:
    engine = engine_for(url)
    if engine.dialect.name != "sqlite" or event.contains(engine, "connect", _sqlite_busy_timeout):
        return
    event.listen(engine, "connect", _sqlite_busy_timeout)
    engine.dispose()  # pooled connections were opened with the shorter timeout


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired):
        if _wants_json(request):
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed):
        message = "The form was stale or forged (CSRF check failed). Reload the page and try again."
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=403)
        return error_page(request, 403, "Request refused", message)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        status = 404 if isinstance(exc, NotFound) else 400
        if _wants_json(request):
            return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=status)
        return error_page(request, status, "That did not work", str(exc), request.headers.get("referer"))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        if _wants_json(request):
            return JSONResponse({"detail": exc.message}, status_code=403)
        if exc.patient_id is None:
            return error_page(request, 403, "Not allowed", exc.message, request.headers.get("referer"))
        return no_access_page(request, exc.patient_id)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        if _wants_json(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        return error_page(request, 422, "Please check the form", problems, request.headers.get("referer"))


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """Build the app; on start-up it sweeps staging leftovers, creates the first admin, fails stale jobs
    from before the study queue and starts the job threads and the PACS outbox's retries."""
    settings = settings or load_web_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _wait_longer_for_sqlite(settings.database_url)
        sweep(settings.database_url, staging_roots(settings.data_dir))  # leftovers of killed runs
        with app.state.gate.held(), transaction(settings.database_url) as session:
            ensure_admin(session, settings.admin_user, settings.admin_password)
        app.state.jobs.recover()
        app.state.jobs.start()
        app.state.pacs_results.start()
        yield
        app.state.jobs.shutdown()
        app.state.pacs_results.shutdown()

    app = FastAPI(
        title="neurotriage",
        version=__version__,
        description=f"Brain-tumour MRI triage. {NOTICE}",
        docs_url=None,  # served below from the package's static files, not Swagger's CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.gate = WriteGate(settings.database_url)
    app.state.throttle = LoginThrottle()
    app.state.repeat_reads = RepeatReads()
    app.state.jobs = JobRunner(settings.database_url, settings.job_workers, app.state.gate)
    app.state.pacs_results = ResultsSender()
    _install_error_handlers(app)
    for module in (auth, patients, jobs, reports, dicom, api, findings_api, audit, account, admin, erase, downloads):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="neurotriage API", swagger_favicon_url="data:,",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js", swagger_css_url="/static/swagger/swagger-ui.css",
        )  # fmt: skip

    # Outermost last: headers on everything, then the session, then the upload limit.
    app.add_middleware(UploadLimit, limit=settings.max_upload_bytes)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="neurotriage_session",
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeaders)
    return app
