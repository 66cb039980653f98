"""Connecting a ledger from the page: the consent redirect, the callback, and the choice of organisation.

- ``POST …/connect`` starts a consent (``connect.start``: ``state``, and PKCE where the ledger has it),
  keeps the state server-side (only its hash) with the verifier encrypted, and sends the browser to the
  ledger's consent page.
- ``GET /oauth/callback`` consumes the state once — unknown, replayed, expired or someone else's state is
  refused before anything else happens — then shows a cancelled or failed consent with guidance, or
  exchanges the code. One organisation: connected. Several: the grant is parked (encrypted) and the
  person picks one (``POST /oauth/choose``, single-use too).
- The callback's ``code`` and ``state`` are blanked in the request before Airflow's access log reads it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from mamo_revenue import connect, errors
from mamo_revenue.db import oauth_states
from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope

from .context import LEDGERS, cipher, engine, export_registry, log, page, page_link
from .pages import load
from .security import PREFIX, Editor, airflow_root, may_edit

router = APIRouter()
_SECRET_PARAMS = {"code", "state", "session_state"}


def callback_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{airflow_root()}{PREFIX}/oauth/callback"


@router.post("/companies/{company_id}/connect", name="start_connect")
def start_connect(request: Request, company_id: str, _: Editor, platform: str = Form("")):
    if platform not in LEDGERS:
        raise HTTPException(422, "Choose Xero or Zoho Books.")
    product = engine()
    with session_scope(product, read_only=True) as session:
        load(session, company_id)
    try:
        pending = connect.start(product, company_id, platform=platform, default_redirect_uri=callback_url(request))
    except errors.MamoRevenueError as exc:
        return _problem(request, company_id, platform, exc.args[0], exc.guidance, 502)
    with session_scope(product) as session:
        oauth_states.create_state(session, company_id=company_id, platform=platform, state=pending.state,
                                  started_by=request.state.ra_user.get_name(), cipher=cipher(),
                                  code_verifier=pending.code_verifier, redirect_uri=pending.redirect_uri)
    return RedirectResponse(pending.url, 303)


def redact_callback_query(request: Request) -> None:
    """The app's first dependency: on the OAuth callback, keep the code and state for the route
    (``request.state.oauth_url`` / ``oauth_query``) and blank them in the request itself, before the login
    check, so no way out (a 401 to the login page included) and not Airflow's access log can show them."""
    if not request.url.path.endswith("/oauth/callback"):
        return
    request.state.oauth_url, request.state.oauth_query = str(request.url), dict(request.query_params)
    _redact_query(request)


def _redact_query(request: Request) -> None:
    """Airflow's access log prints the query string after the response: never the code or the state."""
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    request.scope["query_string"] = urlencode(
        [(k, "***" if k in _SECRET_PARAMS else v) for k, v in pairs]).encode("latin-1")


@router.get("/oauth/callback", name="oauth_callback")
def oauth_callback(request: Request):
    url, query = request.state.oauth_url, request.state.oauth_query  # kept by redact_callback_query
    user = request.state.ra_user
    product = engine()
    with session_scope(product) as session:
        started = oauth_states.consume_state(session, query.get("state"), user=user.get_name(), cipher=cipher())
    if started is None:
        log.warning("Revenue accounting: refused an OAuth callback with an unknown, used or expired state")
        return page(request, "message.html", status_code=400, level="error",
                    title="This connection attempt is not valid any more",
                    text="The ledger sent the browser back with a consent this page did not start, one that was "
                         "already used, one started by another user, or one older than 15 minutes. Nothing was "
                         "changed.",
                    guidance="Start the connection again from the company's page.")
    company_id, platform = started.company_id, started.platform
    if not may_edit(user, company_id):
        raise HTTPException(403, "Forbidden: your Airflow role may not connect this company's ledger.")
    ledger = LEDGERS.get(platform, platform)
    if "error" in query:
        reason = query.get("error_description") or query["error"]
        _log(company_id, user, "connect_failed", f"{ledger} consent not given: {query['error']}")
        guidance = (f"Nothing was changed. To connect, start again, sign in to {ledger}, tick the organisation "
                    "to connect and choose Allow." if query["error"] == "access_denied"
                    else f"Start the connection again; if {ledger} keeps refusing, check the app's settings.")
        return _problem(request, company_id, platform, f"{ledger} did not give access ({reason}).", guidance, 400)
    pending = connect.PendingConsent(company_id, platform, "", query.get("state", ""), started.code_verifier or "",
                                     None, started.redirect_uri)
    try:
        consent = connect.exchange(product, pending, url)
    except errors.MamoRevenueError as exc:
        _log(company_id, user, "connect_failed", f"{ledger}: {exc.args[0]}")
        return _problem(request, company_id, platform, exc.args[0], exc.guidance, 502)
    if not consent.organisations:
        _log(company_id, user, "connect_failed", f"{ledger}: the consent covers no organisation")
        return _problem(request, company_id, platform, f"The {ledger} consent gave access to no organisation.",
                        "Connect again and tick the organisation to connect.", 400)
    if len(consent.organisations) == 1:
        return _finish(request, product, pending, consent, consent.organisations[0])
    with session_scope(product) as session:
        choice = oauth_states.park_grant(session, query["state"], consent.to_dict(), cipher())
    with session_scope(product, read_only=True) as session:
        company = load(session, company_id)
    return page(request, "choose.html", company=company, ledger=ledger, choice=choice,
                organisations=consent.organisations)


@router.post("/oauth/choose", name="oauth_choose")
def oauth_choose(request: Request, _: Editor, choice: str = Form(""), organisation: str = Form("")):
    product = engine()
    user = request.state.ra_user
    with session_scope(product) as session:
        parked = oauth_states.take_parked_grant(session, choice, user=user.get_name(), cipher=cipher())
    if parked is None:
        return page(request, "message.html", status_code=400, level="error",
                    title="This choice is not valid any more",
                    text="The organisation was already chosen, or the choice is older than 15 minutes.",
                    guidance="Start the connection again from the company's page.")
    consent = connect.Consent.from_dict(parked.grant)
    chosen = next((o for o in consent.organisations if o["id"] == organisation), None)
    if chosen is None:
        return _problem(request, parked.company_id, parked.platform, "No organisation was chosen.",
                        "Start the connection again and pick one of the organisations.", 400)
    pending = connect.PendingConsent(parked.company_id, parked.platform, "", "", "", None, parked.redirect_uri)
    return _finish(request, product, pending, consent, chosen)


def _finish(request: Request, product, pending, consent, organisation) -> RedirectResponse:
    user = request.state.ra_user
    ledger = LEDGERS.get(pending.platform, pending.platform)
    try:
        stored = connect.store(product, pending, consent, organisation, user=user.get_name())
    except errors.MamoRevenueError as exc:
        _log(pending.company_id, user, "connect_failed", f"{ledger}: {exc.args[0]}")
        return _problem(request, pending.company_id, pending.platform, exc.args[0], exc.guidance, 502)
    with session_scope(product) as session:
        repo.record_activity(session, pending.company_id, user=user.get_name(), action="connected",
                             detail=f"Connected to {ledger} organisation {stored.name!r}")
    export_registry(product)
    if stored.resumed:
        from .actions import _unpause

        _unpause(request, pending.company_id, wait=True)
    return RedirectResponse(company_url(request, pending.company_id, "connected"), 303)


def company_url(request: Request, company_id: str, notice: str) -> str:
    """The company's page after a top-level round trip: inside Airflow's UI (the plugin's iframe), or
    the page itself when the round trip already ran inside that iframe."""
    return page_link(request, f"/companies/{company_id}?notice={notice}")


def _problem(request: Request, company_id: str, platform: str, text: str, guidance: str, status: int):
    return page(request, "message.html", status_code=status, level="error",
                title=f"{LEDGERS.get(platform, platform)} is not connected", text=text, guidance=guidance,
                company_id=company_id)


def _log(company_id: str, user, action: str, detail: str) -> None:
    with session_scope(engine()) as session:
        repo.record_activity(session, company_id, user=user.get_name(), action=action, detail=detail)
