"""The Revenue accounting page: one FastAPI app behind Airflow's own login, mounted by the plugin.

Airflow mounts a plugin's app without any authentication of its own, so the app requires, on every
route, an authenticated Airflow user allowed to see plugins; writes need more (``security.py``).
Errors are answered as a page for browsers and as JSON for API clients; a browser without a login is
sent to Airflow's login page and back.
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_view
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import actions, oauth, pages
from .context import page
from .security import PREFIX


def remember_user(request: Request, user: GetUserDep) -> None:
    request.state.ra_user = user


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(f"{PREFIX}/api/")


def create_app() -> FastAPI:
    app = FastAPI(
        title="Revenue accounting",
        description="Mamo revenue accounting: companies, ledger connections, mappings, sync history and actions.",
        dependencies=[Depends(oauth.redact_callback_query), Depends(requires_access_view(AccessView.PLUGINS)),
                      Depends(remember_user)],
        docs_url=None, redoc_url=None, openapi_url=None,  # no route without a login, not even the schema
    )
    app.include_router(pages.router)
    app.include_router(oauth.router)
    app.include_router(actions.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if not _wants_html(request):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))
        if exc.status_code == 401 and request.method == "GET":
            from airflow.api_fastapi.app import get_auth_manager

            target = str(request.url.path)
            if request.url.query and not target.endswith("/oauth/callback"):
                target += f"?{request.url.query}"  # a callback's code and state never travel on (nor reach a log)
            login = get_auth_manager().get_url_login()
            return RedirectResponse(f"{login}?next={quote(target, safe='')}", 303)
        titles = {401: "Please log in to Airflow", 403: "Not allowed", 404: "Not found", 409: "Not possible now",
                  422: "Please check what you entered", 502: "The ledger or Airflow did not answer",
                  503: "Not ready"}
        return page(request, "message.html", status_code=exc.status_code, level="error",
                    title=titles.get(exc.status_code, "Something went wrong"), text=str(exc.detail),
                    guidance=None, company_id=request.path_params.get("company_id"))

    return app

