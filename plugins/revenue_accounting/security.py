"""Who may do what on the Revenue accounting page, on top of Airflow's own login.

- Every route of the page's app needs an authenticated Airflow user allowed to see plugins
  (``requires_access_view(AccessView.PLUGINS)``, set on the app itself).
- Reading (the overview, a company's history) needs nothing more: a viewer sees it all.
- Changing anything (add, connect, map, settings, disconnect, the webhook secret) needs the right to
  edit the company's DAG (``PUT`` on the DAG ``mamo_sync_<company>``); acting on periods (sync now,
  backfill, re-sync) the right to create its runs (``POST`` on its DAG runs). With the simple auth
  manager both mean the role ``user`` or above; a ``viewer`` gets 403.
- A change made with the UI's cookie must come from the page itself: a cross-site form post is
  refused by its ``Origin`` (or ``Referer``), whatever ``SameSite`` the cookie has.
"""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Request

from mamo_revenue.dag_factory import dag_id_for

#: Where the page is mounted, and where the Mamo webhook receiver is.
PREFIX = "/revenue-accounting"
WEBHOOK_PREFIX = "/mamo-webhooks"
TOKEN_COOKIE = "_token"
#: Optional: the Airflow REST API base URL the page calls with the user's token (default: the request's own origin).
AIRFLOW_URL_ENV = "MAMO_REVENUE_AIRFLOW_URL"


def _auth_manager():
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def may_edit(user, company_id: str | None = None) -> bool:
    """May ``user`` change the company (or, without one, add companies)?"""
    return _auth_manager().is_authorized_dag(
        method="PUT", details=DagDetails(id=dag_id_for(company_id) if company_id else None), user=user)


def may_run(user, company_id: str | None = None) -> bool:
    """May ``user`` start runs of the company's DAG (sync now, backfill, re-sync)?"""
    return _auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id_for(company_id) if company_id else None), user=user)


def _refuse(what: str) -> HTTPException:
    return HTTPException(403, f"Forbidden: your Airflow role may read the revenue accounting history but not {what}.")


def check_same_origin(request: Request) -> None:
    """A state-changing request authenticated by the UI's cookie must come from this site's own pages."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return  # an explicit token is not ambient: no cross-site request can carry it
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        raise HTTPException(403, "Forbidden: the request does not say which page it came from (no Origin).")
    given = urlsplit(source)
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    public = os.environ.get(AIRFLOW_URL_ENV)
    if public:
        parts = urlsplit(public)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    if f"{given.scheme}://{given.netloc}" not in allowed:
        raise HTTPException(403, "Forbidden: the request came from another site.")


def require_editor(request: Request, user: GetUserDep) -> None:
    check_same_origin(request)
    if not may_edit(user, request.path_params.get("company_id")):
        raise _refuse("change companies, connections, mappings or settings")


def require_runner(request: Request, user: GetUserDep) -> None:
    check_same_origin(request)
    company_id = request.path_params.get("company_id")
    if not (may_run(user, company_id) and may_edit(user, company_id)):
        raise _refuse("sync, backfill or re-sync periods")


Editor = Annotated[None, Depends(require_editor)]
Runner = Annotated[None, Depends(require_runner)]


def user_token(request: Request) -> str | None:
    """The caller's own Airflow token (Authorization header, else the UI's cookie): the page calls
    Airflow's REST API as the user, never with a credential of its own. Never rendered or logged."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return request.cookies.get(TOKEN_COOKIE)


def airflow_root() -> str:
    """Airflow's base path ('' at the root of the host), for links into Airflow's UI."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH.rstrip("/")


def airflow_api_base(request: Request) -> str:
    """Where Airflow's REST API is, for calls made as the user (configurable; default: this server)."""
    configured = os.environ.get(AIRFLOW_URL_ENV)
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{airflow_root()}"
