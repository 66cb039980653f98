"""The page's POST routes: add a company, settings, mapping, webhook secret and registration, and the
period actions.

Every route here needs the editor (or runner) dependency: a viewer gets 403 before anything runs.
Each change is written to the company's activity log and, when it affects the DAG, exported to the
registry the DAG file reads.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mamo_revenue import backfill as backfills
from mamo_revenue import errors
from mamo_revenue.dag_factory import dag_id_for
from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import (
    WEBHOOK_SECRET_MAX,
    mamo_hook_for,
    set_mamo_api_key,
    set_webhook_secret,
    webhook_secret,
)
from mamo_revenue.db.models import validate_company_id
from mamo_revenue.db.session import session_scope
from mamo_revenue.periods import Period

from .airflow_api import AirflowApi, AirflowApiError
from .context import back_to, cipher, engine, export_registry, log, page
from .mapping import validate as validate_mapping
from .pages import _zones, chart_of_accounts, load, mapping_form, webhook_url
from .security import Editor, Runner, airflow_api_base, user_token

router = APIRouter()
MAMO_CONN_ID = "mamo_default"
VAT_STANDARD = Decimal("0.05")


def _user(request: Request) -> str:
    return request.state.ra_user.get_name()


def _api(request: Request) -> AirflowApi:
    return AirflowApi(airflow_api_base(request), user_token(request))


# --- company settings -----------------------------------------------------------------------------


def slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return text[:40].strip("_") or "company"


def read_settings(form: dict, problems: list[str], *, new: bool) -> dict:
    """The settings a form gives, validated; every problem is appended to ``problems``."""
    settings: dict = {}
    name = (form.get("name") or "").strip()
    if not name:
        problems.append("Give the company a name.")
    settings["name"] = name
    zone = (form.get("timezone") or "").strip()
    try:
        ZoneInfo(zone)
        settings["timezone"] = zone
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{zone!r} is not a time zone: use a name such as Asia/Dubai.")
    frequency = form.get("frequency")
    if frequency not in ("daily", "weekly"):
        problems.append("Choose daily or weekly syncs.")
    settings["frequency"] = frequency
    currency = (form.get("base_currency") or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        problems.append("The base currency is a three-letter code such as AED.")
    settings["base_currency"] = currency
    policy = form.get("vat_policy")
    if policy == "none":
        settings["sales_vat_rate"] = None
    elif policy == "standard":
        settings["sales_vat_rate"] = VAT_STANDARD
    elif policy == "custom":
        try:
            rate = Decimal((form.get("vat_rate") or "").strip().rstrip("%")) / 100
            if not Decimal(0) <= rate < 1 or rate.as_tuple().exponent < -4:
                raise InvalidOperation
            settings["sales_vat_rate"] = rate
        except (InvalidOperation, ValueError):
            problems.append("The VAT rate is a percentage such as 5 (at most two decimals).")
    else:
        problems.append("Choose the company's VAT policy on sales.")
    first = (form.get("first_period") or "").strip()
    try:
        first_day = date.fromisoformat(first)
        if first_day > datetime.now(UTC).date() + timedelta(days=366):
            problems.append("The first period is more than a year ahead.")
        settings["first_period"] = first_day
    except ValueError:
        problems.append("The first period is a date (YYYY-MM-DD): its day, or any day of its week.")
    if not new:
        status = form.get("status")
        if status not in ("active", "paused"):
            problems.append("Choose active or paused.")
        settings["status"] = status
    return settings


def check_mamo_key(api_key: str, problems: list[str]) -> str | None:
    """``GET /me`` with the key, at the Mamo base URL of the connection ``mamo_default``; the business name."""
    from mamo_revenue.hooks.mamo import MamoHook

    hook = MamoHook(mamo_conn_id=MAMO_CONN_ID, api_key=api_key, max_attempts=2, backoff_initial=0.2,
                    backoff_max=1.0, retry_after_max=2.0)
    try:
        me = hook.get_me()
    except errors.MamoAuthError:
        problems.append("Mamo refused this API key (HTTP 403): copy the key again from the Mamo dashboard's "
                        "developer page.")
        return None
    except errors.MamoRevenueError as exc:
        log.warning("Mamo key check failed: %s", type(exc).__name__)
        problems.append("Mamo could not be reached to check the key; try again in a minute.")
        return None
    return str(me.get("business_name") or me.get("business_tag") or "Mamo business")


@router.post("/companies", name="add_company")
async def add_company(request: Request, _: Editor):
    form = dict(await request.form())
    return await run_in_threadpool(_add_company, request, form)


def _add_company(request: Request, form: dict):
    problems: list[str] = []
    settings = read_settings(form, problems, new=True)
    company_id = (form.get("company_id") or "").strip() or slug(settings.get("name") or "")
    try:
        validate_company_id(company_id)
    except ValueError:
        problems.append("The company id is 1-40 characters of a-z, 0-9, '_' or '-' (it names the DAG).")
    api_key = (form.get("mamo_api_key") or "").strip()
    if not api_key:
        problems.append("Paste the company's Mamo API key.")
    product = engine()
    with session_scope(product, read_only=True) as session:
        if not problems and repo.get_company(session, company_id) is not None:
            problems.append(f"A company with the id {company_id!r} exists already: choose another id.")
    business = check_mamo_key(api_key, problems) if not problems else None
    if problems:
        form.pop("mamo_api_key", None)  # never echoed back to the browser
        return page(request, "company_form.html", status_code=422, form=form, problems=problems, zones=_zones())
    with session_scope(product) as session:
        # Paused until its ledger is connected and mapped: no run fails for want of a mapping.
        repo.upsert_company(session, company_id, **settings, status="paused", mamo_conn_id=MAMO_CONN_ID,
                            ledger_platform="xero", ledger_conn_id="xero_default")
        set_mamo_api_key(session, company_id, api_key, cipher(), business_name=business)
        repo.record_activity(session, company_id, user=_user(request), action="added",
                             detail=f"Added; Mamo key checked (business {business!r}).")
    export_registry(product)
    return back_to(request, f"/companies/{company_id}", "added")


@router.post("/companies/{company_id}/settings", name="save_settings")
async def save_settings(request: Request, company_id: str, _: Editor):
    form = dict(await request.form())
    return await run_in_threadpool(_save_settings, request, company_id, form)


def _save_settings(request: Request, company_id: str, form: dict):
    problems: list[str] = []
    settings = read_settings(form, problems, new=False)
    api_key = (form.pop("mamo_api_key", None) or "").strip()
    business = check_mamo_key(api_key, problems) if api_key and not problems else None
    product = engine()
    with session_scope(product) as session:
        company = load(session, company_id)
        if company.status == "disconnected" and settings.get("status") == "active":
            problems.append("Connect the ledger again before resuming syncs.")
        if problems:
            return page(request, "settings.html", status_code=422, company=company, form=form,
                        problems=problems, zones=_zones())
        before = company.status
        repo.upsert_company(session, company_id, **settings)
        if api_key:
            set_mamo_api_key(session, company_id, api_key, cipher(), business_name=business)
        changed = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "name")
        repo.record_activity(session, company_id, user=_user(request), action="settings",
                             detail=f"Settings: {changed}" + ("; Mamo key replaced" if api_key else ""))
    export_registry(product)
    if settings["status"] == "active" and before != "active":
        _unpause(request, company_id, wait=True)
    return back_to(request, f"/companies/{company_id}", "settings")


def _unpause(request: Request, company_id: str, *, wait: bool = False) -> None:
    """A company that runs needs its DAG unpaused (a company is created paused, so is its DAG).

    Airflow may not have read the new registry yet: with ``wait`` the DAG is awaited in the background
    (a minute at most) and unpaused once it exists, if the company is still active then.
    """
    api, dag_id = _api(request), dag_id_for(company_id)

    def attempt() -> bool:
        dag = api.dag(dag_id)
        if dag is None:
            return False
        if dag.get("is_paused"):
            with session_scope(engine(), read_only=True) as session:
                active = load(session, company_id).status == "active"
            if active:
                api.set_paused(dag_id, False)
        return True

    def keep_trying() -> None:
        for _ in range(30):
            try:
                if attempt():
                    return
            except (AirflowApiError, HTTPException) as exc:
                log.warning("Revenue accounting: could not resume DAG of %s: %s", company_id, exc)
                return
            time.sleep(2)

    try:
        if attempt() or not wait:
            return
    except AirflowApiError as exc:
        log.warning("Revenue accounting: could not resume DAG of %s: %s", company_id, exc.message)
        return
    threading.Thread(target=keep_trying, name=f"unpause-{dag_id}", daemon=True).start()


@router.post("/companies/{company_id}/mapping", name="save_mapping")
async def save_mapping(request: Request, company_id: str, _: Editor):
    form = dict(await request.form())
    return await run_in_threadpool(_save_mapping, request, company_id, form)


def _save_mapping(request: Request, company_id: str, form: dict):
    chosen = {k[len("map_"):]: str(v) for k, v in form.items() if k.startswith("map_")}
    company, accounts, problem = chart_of_accounts(company_id)
    if problem is not None:
        return mapping_form(request, company, None, problem, chosen, [], [], 502)
    mapped, problems, warnings = validate_mapping(chosen, accounts)
    if problems:
        return mapping_form(request, company, accounts, None, chosen, problems, warnings, 422)
    product = engine()
    with session_scope(product) as session:
        first_mapping = not repo.get_mappings(session, company_id)
        repo.set_mappings(session, company_id, {
            c: repo.MappedAccount(a.id, a.code, a.name) for c, a in mapped.items()}, replace=True)
        summary = ", ".join(f"{c}={a.code or a.name}" for c, a in mapped.items())
        repo.record_activity(session, company_id, user=_user(request), action="mapped", detail=f"Mapping: {summary}")
        company = load(session, company_id)
        connection = repo.get_ledger_connection(session, company_id)
        # The first mapping (of a new company, or after another organisation was connected) ends the setup.
        start = (first_mapping and company.status == "paused" and connection is not None
                 and connection.status == "connected")
        if start:
            repo.set_company_status(session, company_id, "active")
            repo.record_activity(session, company_id, user=_user(request), action="settings",
                                 detail="Syncing started: the ledger is connected and the accounts are mapped.")
    if start:
        export_registry(product)
        _unpause(request, company_id, wait=True)
    return back_to(request, f"/companies/{company_id}", "mapped")


@router.post("/companies/{company_id}/webhook-secret", name="save_webhook_secret")
def save_webhook_secret(request: Request, company_id: str, _: Editor, secret: str = Form("")):
    with session_scope(engine()) as session:
        load(session, company_id)
        try:
            set_webhook_secret(session, company_id, secret or None, cipher())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        repo.record_activity(session, company_id, user=_user(request), action="webhook_secret",
                             detail="Webhook secret " + ("set" if secret else "removed"))
    return back_to(request, f"/companies/{company_id}", "secret")


#: What the page registers: Mamo's charge and refund events (the charge.* family only: subscribing to the
#: payment.* mirror as well would deliver each event twice, MAMO_API.md §11).
WEBHOOK_EVENTS = ["charge.succeeded", "charge.failed", "charge.refund_initiated", "charge.refunded",
                  "charge.refund_failed"]  # fmt: skip
UNREACHABLE_GUIDANCE = (
    "Mamo's servers could not reach {url}. The Airflow api-server must be reachable from the internet at that "
    "address: set MAMO_REVENUE_AIRFLOW_URL to its public address (https://…), restart the api-server, and "
    "register again."
)


def new_webhook_secret() -> str:
    """A random ``auth_header``: 43 URL-safe characters (256 bits), within Mamo's 50."""
    secret = secrets.token_urlsafe(32)
    assert len(secret) <= WEBHOOK_SECRET_MAX
    return secret


@router.post("/companies/{company_id}/webhook-register", name="register_webhook")
def register_webhook(request: Request, company_id: str, _: Editor):
    """Register the company's receiver with Mamo, with the company's own key, replacing an earlier one.

    The secret (``auth_header``) is made here when the company has none and stored before Mamo is
    called, since Mamo pings the receiver, which checks it, before it accepts the webhook.
    """
    product = engine()
    with session_scope(product) as session:
        company = load(session, company_id)
        secret = webhook_secret(company, cipher())
        made = secret is None
        if made:
            secret = new_webhook_secret()
            set_webhook_secret(session, company_id, secret, cipher())
        previous = company.mamo_webhook_id
        session.expunge(company)
    url = webhook_url(request, company_id)
    hook = mamo_hook_for(company, cipher=cipher(), max_attempts=2, backoff_initial=0.5, backoff_max=2.0,
                         retry_after_max=5.0)  # fmt: skip
    try:
        created = hook.register_webhook(url, WEBHOOK_EVENTS, secret)
        webhook_id = str(created["id"])
        # One webhook per receiver: the earlier registration (and any other of the same URL) goes.
        stale = {w.get("id") for w in hook.list_webhooks() if w.get("url") == url} | {previous}
        for old in sorted(str(i) for i in stale - {None, webhook_id}):
            try:
                hook.delete_webhook(old)
            except errors.MamoApiError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
    except errors.MamoRevenueError as exc:
        return _register_failed(request, company_id, url, exc, made)
    with session_scope(product) as session:
        load(session, company_id).mamo_webhook_id = webhook_id
        replaced = sorted(str(i) for i in stale - {None, webhook_id})
        repo.record_activity(
            session, company_id, user=_user(request), action="webhook_registered",
            detail=f"Registered with Mamo as webhook {webhook_id}: {url}, events {', '.join(WEBHOOK_EVENTS)}"
                   + ("; a new webhook secret was generated" if made else "; the saved webhook secret is its auth_header")
                   + (f"; replaced {', '.join(replaced)}" if replaced else ""),
        )  # fmt: skip
    log.info("Revenue accounting: Mamo webhook %s registered for %s", webhook_id, company_id)
    return back_to(request, f"/companies/{company_id}", "webhook_registered", webhook=webhook_id)


def _register_failed(request: Request, company_id: str, url: str, exc: errors.MamoRevenueError, made: bool):
    message = exc.args[0] if exc.args else type(exc).__name__
    if "Webhook is unreachable" in message:
        guidance = UNREACHABLE_GUIDANCE.format(url=url)
    elif isinstance(exc, errors.MamoAuthError):
        guidance = ("Mamo refused the company's API key: paste a current key from the Mamo dashboard's developer "
                    "page in Sync settings, then register again.")
    else:
        guidance = exc.guidance
    log.warning("Revenue accounting: Mamo webhook registration failed for %s: %s", company_id, message)
    with session_scope(engine()) as session:
        repo.record_activity(session, company_id, user=_user(request), action="webhook_register_failed",
                             detail=f"Mamo did not register the webhook for {url}: {message}"
                                    + ("; a new webhook secret was saved for the next try" if made else ""))
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": message, "guidance": guidance, "webhook_url": url}, 502)
    return page(request, "message.html", status_code=502, level="error", title="Mamo did not register the webhook",
                text=message, guidance=guidance, company_id=company_id)


# --- period actions -------------------------------------------------------------------------------


def _period(company, text: str) -> Period:
    try:
        period = Period.parse((text or "").strip(), company.frequency)
    except (ValueError, TypeError):
        raise HTTPException(422, f"{text!r} is not a period: give a day (2026-11-20) or a week (2026-W47).") from None
    first = Period.containing(company.first_period, company.frequency) if company.first_period else None
    if first is not None and period.first_day < first.first_day:
        raise HTTPException(422, f"{period.label} is before the company's first period ({first.label}).")
    if period.local_end > datetime.now(UTC).astimezone(ZoneInfo(company.timezone)).replace(tzinfo=None):
        raise HTTPException(422, f"{period.label} is not over yet in {company.timezone}: only complete periods "
                                 "are synced.")
    return period


def _ready(session, company) -> None:
    connection = repo.get_ledger_connection(session, company.id)
    if connection is None or connection.status != "connected":
        raise HTTPException(409, "Connect the company's ledger first.")
    if company.status != "active":
        raise HTTPException(409, f"Syncing is {company.status} for this company: resume it in Sync settings first.")


def _fail(exc: AirflowApiError) -> HTTPException:
    return HTTPException(502 if exc.status is None or exc.status >= 500 else 409,
                         f"{exc.message}. {exc.guidance}".strip())


def _trigger(request: Request, company_id: str, period: Period, note: str) -> str:
    api = _api(request)
    try:
        _unpause(request, company_id)
        run = api.trigger(dag_id_for(company_id), period.label, note=note)
    except AirflowApiError as exc:
        raise _fail(exc) from None
    return str(run.get("dag_run_id") or "")


@router.post("/companies/{company_id}/sync", name="sync")
def sync_now(request: Request, company_id: str, _: Runner, period: str = Form(...)):
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        _ready(session, company)
        parsed = _period(company, period)
    run_id = _trigger(request, company_id, parsed, f"Sync of {parsed.label} requested by {_user(request)} "
                                                   "on the Revenue accounting page")
    with session_scope(engine()) as session:
        repo.record_activity(session, company_id, user=_user(request), action="sync", period_label=parsed.label,
                             run_id=run_id, detail=f"Sync of {parsed.label} requested")
    return back_to(request, f"/companies/{company_id}", "sync", run=run_id)


@router.post("/companies/{company_id}/backfill", name="backfill")
def backfill(request: Request, company_id: str, _: Runner, from_date: str = Form(...), to_date: str = Form(...)):
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        _ready(session, company)
        first, last = _period(company, from_date), _period(company, to_date)
    if last.first_day < first.first_day:
        raise HTTPException(422, "The backfill ends before it starts.")
    token = user_token(request)
    if not token:  # never fall back to the command line's credentials: Airflow must see this user
        raise HTTPException(401, "No Airflow login on this request. Log in to Airflow again.")
    try:
        _unpause(request, company_id)
    except AirflowApiError as exc:
        raise _fail(exc) from None
    # The same backfill as `mamo-revenue backfill` (catch-up guard included), as this user, one period at a time.
    try:
        outcome = backfills.backfill_company(backfills.AirflowApi(airflow_api_base(request), token=token), company,
                                             first.first_day, last.last_day, reprocess="failed", max_active_runs=1)
    except backfills.BackfillError as exc:
        raise HTTPException(502, f"{exc.args[0]}. {exc.guidance}") from None
    if not outcome.ok:
        raise HTTPException(409, outcome.text)
    with session_scope(engine()) as session:
        repo.record_activity(session, company_id, user=_user(request), action="backfill",
                             period_label=f"{first.label}..{last.label}"[:32],
                             detail=f"Backfill of {first.label} to {last.label}: {outcome.text}"[:500])
    return back_to(request, f"/companies/{company_id}", "backfill")


@router.post("/companies/{company_id}/resync", name="resync")
def resync(request: Request, company_id: str, _: Runner, period: str = Form(...)):
    """Void the period's journal in the ledger, reopen its sync record, and run it again."""
    from mamo_revenue.sync import ledger_hook_for

    product = engine()
    with session_scope(product, read_only=True) as session:
        company = load(session, company_id)
        _ready(session, company)
        parsed = _period(company, period)
        record = repo.get_sync_record(session, company_id, parsed.key)
        session.expunge(company)
    if record is None:
        raise HTTPException(409, f"{parsed.label} was never synced: use Sync now.")
    if record.status == "running":
        raise HTTPException(409, f"{parsed.label} is being synced right now; wait for the run to finish.")
    voided = None
    if record.status == "posted":
        try:
            voided = ledger_hook_for(company, product).void_journal(record.reference)
        except errors.MamoRevenueError as exc:
            raise HTTPException(409, f"The ledger refused to void {record.reference}: {exc.args[0]}. "
                                     f"What to do: {exc.guidance}") from None
    with session_scope(product) as session:
        try:
            repo.reopen_period(session, company_id, parsed.key)
        except errors.PeriodBusy as exc:
            raise HTTPException(409, str(exc)) from None
    run_id = _trigger(request, company_id, parsed, f"Re-sync of {parsed.label} requested by {_user(request)}")
    with session_scope(product) as session:
        what = f"journal {voided.ledger_id} voided" if voided is not None else "no posted journal to void"
        repo.record_activity(session, company_id, user=_user(request), action="resync", period_label=parsed.label,
                             run_id=run_id, detail=f"Re-sync of {parsed.label}: {what}; period reopened")
    return back_to(request, f"/companies/{company_id}", "resync", run=run_id)


@router.post("/companies/{company_id}/disconnect", name="disconnect")
def disconnect(request: Request, company_id: str, _: Editor):
    from mamo_revenue.connect import disconnect as revoke_and_disconnect

    product = engine()
    with session_scope(product, read_only=True) as session:
        load(session, company_id)
    revoked, problem = revoke_and_disconnect(product, company_id)
    with session_scope(product) as session:
        detail = "Disconnected; the ledger's grant was revoked" if revoked else \
            f"Disconnected here; the ledger's access was not withdrawn: {problem}"
        repo.record_activity(session, company_id, user=_user(request), action="disconnected", detail=detail)
    export_registry(product)
    try:
        _api(request).set_paused(dag_id_for(company_id), True)
    except AirflowApiError as exc:
        log.warning("Revenue accounting: could not pause DAG of %s: %s", company_id, exc.message)
    return back_to(request, f"/companies/{company_id}", "disconnected" if revoked else "disconnected_here")
