"""The page's GET routes: overview, a company, its forms, confirmations, and the read-only JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from mamo_revenue import errors
from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope
from mamo_revenue.periods import Period

from . import mapping as mapping_rules
from .context import (
    HERE,
    LEDGERS,
    NOTICES,
    TOTAL_COLUMNS,
    HistoryRow,
    company_summary,
    engine,
    notification_for,
    page,
    vat_policy,
)
from .security import WEBHOOK_PREFIX, Editor, Runner, airflow_api_base

router = APIRouter()


def load(session, company_id: str):
    company = repo.get_company(session, company_id)
    if company is None:
        raise HTTPException(404, f"No company {company_id!r}.")
    return company


def _overview(request: Request) -> dict:
    user = request.state.ra_user
    with session_scope(engine(), read_only=True) as session:
        companies = repo.list_companies(session)
        latest = repo.latest_sync_records(session)
        connections = {c.id: repo.get_ledger_connection(session, c.id) for c in companies}
    summaries = [company_summary(c, connections[c.id], latest.get(c.id), user) for c in companies]
    notes = [n for c in companies if (n := notification_for(c, latest.get(c.id), connections[c.id]))]
    return {"companies": summaries, "notifications": notes}


@router.get("/", name="overview")
def overview(request: Request, notice: str | None = None):
    return page(request, "overview.html", notice=NOTICES.get(notice or ""), **_overview(request))


@router.get("/static/style.css", include_in_schema=False)
def stylesheet():
    return FileResponse(HERE / "static" / "style.css", media_type="text/css",
                        headers={"Cache-Control": "private, max-age=300"})


def last_complete_period(company) -> Period:
    return Period.last_complete_before(datetime.now(UTC), company.timezone, company.frequency)


def webhook_url(request: Request, company_id: str) -> str:
    return f"{airflow_api_base(request)}{WEBHOOK_PREFIX}/{company_id}"


@router.get("/companies/new", name="new_company")
def new_company(request: Request, _: Editor):
    return page(request, "company_form.html", form={}, problems=[], zones=_zones())


@router.get("/companies/{company_id}", name="company")
def company_page(request: Request, company_id: str, notice: str | None = None, run: str | None = None):
    user = request.state.ra_user
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        connection = repo.get_ledger_connection(session, company_id)
        records = repo.list_sync_records(session, company_id, limit=90)
        mapping = repo.get_mappings(session, company_id)
        activity = repo.list_activity(session, company_id, limit=15)
        events = repo.list_webhook_events(session, company_id, limit=10)
        latest = repo.latest_sync_records(session).get(company_id)
    summary = company_summary(company, connection, latest, user)
    default_period = last_complete_period(company)
    return page(
        request, "company.html",
        notice=NOTICES.get(notice or ""), company=company, summary=summary,
        notification=notification_for(company, latest, connection),
        history=[HistoryRow.of(r) for r in records], total_columns=TOTAL_COLUMNS,
        mapping=[(c, mapping.get(c), mapping_rules.FALLBACK_OF.get(c)) for c in mapping_rules.CATEGORIES],
        activity=activity, events=events, vat=vat_policy(company.sales_vat_rate),
        webhook_url=webhook_url(request, company_id), has_webhook_secret=bool(company.webhook_secret_enc),
        has_own_key=bool(company.mamo_api_key_enc), default_period=default_period.label,
        default_from=(default_period.first_day.replace(day=1)).isoformat(), default_to=default_period.first_day.isoformat(),
        connection=connection,
    )


@router.get("/companies/{company_id}/settings", name="settings")
def settings_page(request: Request, company_id: str, _: Editor):
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
    return page(request, "settings.html", company=company, form=_settings_form(company), problems=[],
                zones=_zones())


def _settings_form(company) -> dict:
    rate = company.sales_vat_rate
    return {"name": company.name, "timezone": company.timezone, "frequency": company.frequency,
            "base_currency": company.base_currency, "status": company.status,
            "vat_policy": "none" if rate is None else ("standard" if rate == Decimal("0.05") else "custom"),
            "vat_rate": "" if rate is None else f"{(rate * 100).normalize():f}",
            "first_period": company.first_period.isoformat() if company.first_period else ""}


def chart_of_accounts(company_id: str):
    """The company's ledger chart, live; (company, accounts or None, problem or None)."""
    from mamo_revenue.sync import ledger_hook_for

    product = engine()
    with session_scope(product, read_only=True) as session:
        company = load(session, company_id)
        session.expunge(company)
    try:
        return company, ledger_hook_for(company, product).list_accounts(), None
    except errors.MamoRevenueError as exc:
        return company, None, exc


@router.get("/companies/{company_id}/mapping", name="mapping")
def mapping_page(request: Request, company_id: str, _: Editor):
    company, accounts, problem = chart_of_accounts(company_id)
    with session_scope(engine(), read_only=True) as session:
        current = repo.get_mappings(session, company_id)
    return mapping_form(request, company, accounts, problem, {c: m.account_id for c, m in current.items()}, [], [])


def mapping_form(request, company, accounts, problem, chosen, problems, warnings, status_code=200):
    rows = []
    for category in mapping_rules.CATEGORIES:
        rows.append({"category": category, "required": category in mapping_rules.REQUIRED,
                     "fallback": mapping_rules.FALLBACK_OF.get(category), "chosen": chosen.get(category, ""),
                     "options": mapping_rules.options(category, accounts or [])})
    return page(request, "mapping.html", status_code=status_code, company=company, rows=rows,
                ledger_problem=problem, problems=problems, warnings=warnings)


@router.get("/companies/{company_id}/connect", name="connect")
def connect_page(request: Request, company_id: str, _: Editor):
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        connection = repo.get_ledger_connection(session, company_id)
    return page(request, "connect.html", company=company, connection=connection, ledgers=LEDGERS)


ACTIONS = ("sync", "backfill", "resync", "disconnect")


@router.get("/companies/{company_id}/confirm/{action}", name="confirm")
def confirm_page(request: Request, company_id: str, action: str, _: Runner, period: str | None = None,
                 from_date: str | None = None, to_date: str | None = None):
    if action not in ACTIONS:
        raise HTTPException(404, "No such action.")
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        connection = repo.get_ledger_connection(session, company_id)
        record = None
        problems = []
        parsed = None
        if action in ("sync", "resync"):
            try:
                parsed = Period.parse((period or "").strip(), company.frequency)
            except (ValueError, TypeError):
                problems.append(f"{period!r} is not a period: give a day (2026-11-20) or, for a weekly company, "
                                "a week (2026-W47).")
            if parsed is not None:
                record = repo.get_sync_record(session, company_id, parsed.key)
    return page(request, "confirm.html", company=company, connection=connection, action=action,
                period=parsed, record=HistoryRow.of(record) if record else None, problems=problems,
                from_date=from_date or "", to_date=to_date or "", ledger=LEDGERS.get(company.ledger_platform))


# --- read-only JSON ------------------------------------------------------------------------------------


@router.get("/api/companies", name="api_companies")
def api_companies(request: Request):
    data = _overview(request)
    companies = [{k: v for k, v in c.items() if k != "latest"} | {
        "latest": c["latest"].as_json() if c["latest"] else None} for c in data["companies"]]
    return JSONResponse({"companies": companies,
                         "notifications": [n.__dict__ for n in data["notifications"]]})


@router.get("/api/companies/{company_id}/history", name="api_history")
def api_history(company_id: str, limit: int = 90):
    with session_scope(engine(), read_only=True) as session:
        company = load(session, company_id)
        records = repo.list_sync_records(session, company_id, limit=max(1, min(limit, 1000)))
    return {"company_id": company.id, "base_currency": company.base_currency,
            "history": [HistoryRow.of(r).as_json() for r in records]}


@router.get("/api/companies/{company_id}/accounts", name="api_accounts")
def api_accounts(company_id: str, _: Editor):
    company, accounts, problem = chart_of_accounts(company_id)
    if problem is not None:
        return JSONResponse({"detail": problem.args[0], "guidance": problem.guidance}, 502)
    return {"company_id": company.id, "categories": {
        category: [o.__dict__ for o in mapping_rules.options(category, accounts)]
        for category in mapping_rules.CATEGORIES}}


def _zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))

