"""A console as a sub-application mounted at ``/console``: its login and logout, the
session and CSRF check every page depends on, templates, static files, error pages.

Each service supplies what differs: how a username and password are checked (its own
login route, so its password check and login throttle apply unchanged), its database,
its pages.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from dynaseal.core.errors import APIError
from dynaseal.storage import Database
from dynaseal.webui import formats
from dynaseal.webui.headers import SecurityHeaders
from dynaseal.webui.sessions import CSRF_FIELD, CSRF_HEADER, Login, SessionStore, same_token

#: Checks a username and password; returns the subject (tenant or user id) or raises
#: the service's own APIError (401 wrong password, 429 throttled).
Authenticate = Callable[[Request, str, str], Awaitable[str]]


class LoginRequired(Exception):
    """No open session: the browser is sent to the login page."""


class CSRFRefused(Exception):
    """A form came without this session's CSRF token."""


@dataclass
class Console:
    title: str
    store: SessionStore
    templates: Jinja2Templates
    db_of: Callable[[Request], Database]
    authenticate: Authenticate
    login_hint: str = ""

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        login: Login | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        page = {
            "base": base_path(request),
            "console_title": self.title,
            "login_hint": self.login_hint,
            "login": login,
            **(context or {}),
        }
        return self.templates.TemplateResponse(
            request, template, page, status_code=status, headers=dict(headers or {})
        )


def base_path(request: Request) -> str:
    """Where the console is mounted (``/console``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", ""))


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


async def current_login(request: Request) -> Login:
    """The session of the request's cookie; for anything but GET also its CSRF token."""
    console = console_of(request)
    store = console.store
    login = await store.find(console.db_of(request), request.cookies.get(store.cookie))
    if login is None:
        raise LoginRequired
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            field = (await request.form()).get(CSRF_FIELD)
            given = field if isinstance(field, str) else None
        if not same_token(given, login.csrf):
            raise CSRFRefused
    return login


CurrentLogin = Annotated[Login, Depends(current_login)]


def templates_for(package: str) -> Jinja2Templates:
    """The console's own templates first, then the shared ones (base page, charts)."""
    environment = Environment(
        loader=ChoiceLoader([PackageLoader(package), PackageLoader("dynaseal.webui")]),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(formats.FILTERS)
    environment.globals["csrf"] = csrf_input
    return Jinja2Templates(env=environment)


def csrf_input(login: Login) -> Markup:
    """The hidden field every form of a logged-in page carries."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, login.csrf)


def create_console_app(console: Console, routers: Sequence[APIRouter]) -> FastAPI:
    """The sub-application to mount at ``/console``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(packages=[("dynaseal.webui", "static")]), name="static")
    app.include_router(_auth)
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(CSRFRefused, _csrf_refused)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    return app


_auth = APIRouter()


@_auth.get("/login", include_in_schema=False)
async def login_page(request: Request) -> Response:
    console = console_of(request)
    store = console.store
    if await store.find(console.db_of(request), request.cookies.get(store.cookie)):
        return RedirectResponse(base_path(request) + "/", 303)
    return _login_form(request)


def _login_form(
    request: Request,
    error: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    console = console_of(request)
    token = secrets.token_urlsafe(32)
    response = console.render(
        request, "login.html", {"login_csrf": token, "error": error}, status=status, headers=headers
    )
    console.store.set_cookie(response, request, console.store.login_cookie, token)
    return response


@_auth.post("/login", include_in_schema=False)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    console = console_of(request)
    store = console.store
    expected = request.cookies.get(store.login_cookie)
    if not expected or not same_token(csrf_token, expected):
        return _login_form(request, "The login form expired; please try again.", 403)
    try:
        subject = await console.authenticate(request, username, password)
    except APIError as exc:
        retry = (exc.headers or {}).get("Retry-After")
        return _login_form(
            request, exc.message, exc.status, {"Retry-After": retry} if retry else {}
        )
    token = await store.open(console.db_of(request), subject)
    response = RedirectResponse(base_path(request) + "/", 303)
    store.set_cookie(response, request, store.cookie, token)
    store.clear_cookie(response, request, store.login_cookie)
    return response


@_auth.post("/logout", include_in_schema=False)
async def logout(request: Request, session: CurrentLogin) -> Response:
    console = console_of(request)
    await console.store.close(console.db_of(request), session.token)
    response = RedirectResponse(base_path(request) + "/login", 303)
    console.store.clear_cookie(response, request, console.store.cookie)
    return response


async def _to_login(request: Request, _: Exception) -> Response:
    target = base_path(request) + "/login"
    if request.headers.get("hx-request"):  # htmx follows this header, not a redirect
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, 303)


async def _error_page(request: Request, status: int, message: str) -> Response:
    console = console_of(request)
    login = await console.store.find(
        console.db_of(request), request.cookies.get(console.store.cookie)
    )
    return console.render(
        request, "error.html", {"status": status, "message": message}, login=login, status=status
    )


async def _csrf_refused(request: Request, _: Exception) -> Response:
    return await _error_page(request, 403, "This form has expired. Reload the page and try again.")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return await _error_page(request, exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return await _error_page(request, exc.status_code, str(exc.detail))


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return await _error_page(request, 400, first_problem(exc.errors()))


def problem(exc: ValidationError | APIError) -> dict[str, Any]:
    """How a page answers a refused form: the status, and one line saying why."""
    if isinstance(exc, APIError):
        return {"status": exc.status, "error": exc.message}
    return {"status": 400, "error": first_problem(exc.errors())}


def first_problem(errors: Sequence[Any]) -> str:
    """The first of Pydantic's validation errors, as one line for a person."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form"))
    message = first.get("msg", "invalid value")
    return f"{where}: {message}" if where else message
