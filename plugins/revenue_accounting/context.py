"""What every route of the page shares: the product DB, the templates, and the company view models.

Nothing here ever hands a token, key or secret to a template: the view models carry only what a
finance user reads (names, statuses, totals, links).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from mamo_revenue.dag_factory import dag_id_for
from mamo_revenue.money import format_minor

from .security import PREFIX, airflow_root, may_edit, may_run

log = logging.getLogger("mamo_revenue.ui")
#: The page's entry in Airflow's UI (``external_views`` ``url_route``): ``/plugin/<UI_ROUTE>``.
UI_ROUTE = "revenue-accounting"
HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

LEDGERS = {"xero": "Xero", "zoho_books": "Zoho Books"}
STATUS_LABELS = {
    "posted": "Completed",
    "nothing_to_post": "Nothing to post",
    "failed": "Failed",
    "running": "Running",
    "pending": "Waiting to run",
}
CONNECTION_LABELS = {
    None: "Not connected",
    "connected": "Connected",
    "needs_reconnect": "Needs reconnecting",
    "disconnected": "Disconnected",
}
COMPANY_LABELS = {"active": "Active", "paused": "Paused", "disconnected": "Stopped (disconnected)"}
CATEGORY_LABELS = {
    "clearing": "Accounts receivable / Mamo clearing",
    "sales": "Sales",
    "refunds": "Refunds (contra revenue)",
    "fees": "Processing fees",
    "vat_payable": "VAT payable (on sales)",
    "vat_refunds": "VAT payable, refunds",
    "vat_recoverable": "VAT recoverable (on fees)",
}
#: History columns: (totals key, heading).
TOTAL_COLUMNS = (("sales", "Sales"), ("vat_payable", "VAT on sales"), ("refunds", "Refunds"),
                 ("vat_refunds", "VAT on refunds"), ("fees", "Fees"), ("vat_recoverable", "VAT on fees"),
                 ("clearing", "Mamo clearing"))
NOTICES = {
    "added": "Company added. Next: connect its ledger.",
    "connected": "Ledger connected.",
    "mapped": "Account mapping saved.",
    "settings": "Sync settings saved; the company's DAG follows within a few seconds.",
    "secret": "Webhook secret saved. If a webhook is registered with Mamo, register it again so that Mamo "
              "sends the new secret.",
    "webhook_registered": "Webhook registered with Mamo: Mamo now announces this company's charges and refunds "
                          "to its receiver.",
    "sync": "Sync requested: the run appears in the history once it starts.",
    "backfill": "Backfill created: Airflow runs the periods one after the other.",
    "resync": "Re-sync requested: the journal was voided in the ledger and the period runs again.",
    "disconnected": "Disconnected: the ledger's access was revoked and no more periods are synced. "
                    "History and mappings are kept.",
    "disconnected_here": "Disconnected: no more periods are synced and the stored access was erased, but "
                         "the ledger's own access was not withdrawn (the activity below says why). History "
                         "and mappings are kept.",
}


# --- the product DB ----------------------------------------------------------------------------------

_ready_lock = threading.Lock()
_ready: set[str] = set()


def engine():
    """The product DB, checked once per process to be at the code's migration."""
    from mamo_revenue.db.session import current_revision, engine_for_connection, head_revision

    try:
        product = engine_for_connection()
    except Exception as exc:  # no connection, no secret: say so rather than a stack trace
        log.error("Revenue accounting: product DB unavailable: %s", type(exc).__name__)
        raise HTTPException(503, "The product database is not configured (Airflow connection mamo_revenue_db).") from None
    key = str(product.url)
    if key not in _ready:
        with _ready_lock:
            if current_revision(product) != head_revision():
                raise HTTPException(503, "The product database is not at the current version: run "
                                         "`mamo-revenue db upgrade` (make run does it), then reload.")
            _ready.add(key)
    return product


def cipher():
    from mamo_revenue.db.crypto import load_cipher

    return load_cipher()


def registry_path() -> Path:
    """The company list the DAG file reads (``$MAMO_REVENUE_REGISTRY``, else beside the DAGs)."""
    from airflow.configuration import conf

    from mamo_revenue.dag_factory import REGISTRY_ENV

    configured = os.environ.get(REGISTRY_ENV)
    return Path(configured) if configured else Path(conf.get("core", "dags_folder")) / "registry.json"


def export_registry(product) -> None:
    """After any company change: the DAGs follow (new, paused, resumed, disconnected)."""
    from mamo_revenue.registry import export_registry as export

    export(product, registry_path())


# --- rendering ---------------------------------------------------------------------------------------


def page(request: Request, template: str, status_code: int = 200, **values: Any):
    user = getattr(request.state, "ra_user", None)
    root = airflow_root()
    base = {
        "request": request,
        "prefix": root + PREFIX,
        "root": root,
        "user_name": user.get_name() if user else None,
        "may_add": bool(user) and may_edit(user),
        "labels": {"status": STATUS_LABELS, "ledger": LEDGERS, "connection": CONNECTION_LABELS,
                   "company": COMPANY_LABELS, "category": CATEGORY_LABELS},
        "money": money,
        "local_time": local_time,
        "link": lambda path: page_link(request, path),
    }
    return templates.TemplateResponse(request, template, base | values, status_code=status_code)


def page_link(request: Request, path: str) -> str:
    """A link to one of the page's paths from a page that may be top-level (after a ledger's consent):
    inside Airflow's UI (its iframe of this page), unless this page already is in that iframe."""
    own = airflow_root() + PREFIX + path
    if request.headers.get("sec-fetch-dest") == "iframe":
        return own
    return f"{airflow_root()}/plugin/{UI_ROUTE}{own}"


def back_to(request: Request, path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    """303 to one of the page's own paths (Post/Redirect/Get), with a fixed notice code."""
    params = {k: v for k, v in query.items() if v}
    if notice:
        params["notice"] = notice
    url = airflow_root() + PREFIX + path + (f"?{urlencode(params)}" if params else "")
    return RedirectResponse(url, 303)


def money(minor: int | None, currency: str = "") -> str:
    if minor is None:
        return ""
    text = format_minor(abs(int(minor)))
    text = f"({text})" if minor < 0 else text
    return f"{text} {currency}".strip()


def local_time(moment: datetime | None, tz: str = "Asia/Dubai") -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


# --- view models -------------------------------------------------------------------------------------


def airflow_links(company_id: str, run_id: str | None, error_message: str | None = None) -> dict[str, str]:
    """Links into Airflow's UI: the run, and the task log of the step that failed (or of post)."""
    if not run_id:
        return {}
    root, dag_id = airflow_root(), dag_id_for(company_id)
    run = f"{root}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    step = (error_message or "").split(":", 1)[0]
    task = step if step in ("extract", "build", "validate", "post") else ("post" if not error_message else "extract")
    return {"run": run, "logs": f"{run}/tasks/{task}"}


@dataclass
class HistoryRow:
    period: str
    status: str
    label: str
    reference: str
    totals: dict[str, int]
    journal_url: str | None
    journal_id: str | None
    links: dict[str, str]
    error: str | None
    guidance: str | None
    updated: datetime | None
    attempts: int
    closed: bool

    @classmethod
    def of(cls, record) -> HistoryRow:
        totals = record.totals or {}
        return cls(
            period=record.period_label, status=record.status,
            label=STATUS_LABELS.get(record.status, record.status), reference=record.reference,
            totals={key: int(totals[key]) for key, _ in TOTAL_COLUMNS if key in totals},
            journal_url=record.ledger_url if record.status == "posted" else None,
            journal_id=record.ledger_journal_id if record.status == "posted" else None,
            links=airflow_links(record.company_id, record.run_id, record.error_message),
            error=f"{record.error_class}: {record.error_message}" if record.error_class else None,
            guidance=record.guidance, updated=record.updated_at, attempts=record.attempts or 0,
            closed=record.status in ("posted", "nothing_to_post"),
        )

    def as_json(self) -> dict:
        return {"period": self.period, "status": self.status, "status_label": self.label,
                "reference": self.reference, "totals_minor": self.totals, "journal_url": self.journal_url,
                "ledger_journal_id": self.journal_id, "airflow_run_url": self.links.get("run"),
                "airflow_logs_url": self.links.get("logs"), "error": self.error, "guidance": self.guidance,
                "updated_at": self.updated.isoformat() if self.updated else None}


@dataclass
class Notification:
    company_id: str
    company_name: str
    level: str  # success, info, warning, error
    text: str
    guidance: str | None = None
    links: dict[str, str] = field(default_factory=dict)


def notification_for(company, record, connection) -> Notification | None:
    """The company's latest outcome, as the page's banner says it."""
    name = company.name
    if connection is not None and connection.status == "needs_reconnect":
        return Notification(company.id, name, "error", f"{name}: the ledger connection was refused.",
                            "Reconnect the ledger from the company's page.")
    if record is None:
        return None
    links = airflow_links(company.id, record.run_id, record.error_message)
    period = record.period_label
    if record.status == "posted":
        return Notification(company.id, name, "success",
                            f"{name}: {period} completed, journal {record.reference} posted.",
                            links=links | ({"journal": record.ledger_url} if record.ledger_url else {}))
    if record.status == "nothing_to_post":
        return Notification(company.id, name, "info", f"{name}: {period} had no Mamo activity; nothing to post.",
                            links=links)
    if record.status == "failed":
        return Notification(company.id, name, "error", f"{name}: {period} failed — {record.error_class}.",
                            record.guidance, links)
    return Notification(company.id, name, "info", f"{name}: {period} is {STATUS_LABELS[record.status].lower()}.",
                        links=links)


def company_summary(company, connection, latest, user) -> dict:
    return {
        "id": company.id, "name": company.name, "ledger": LEDGERS.get(company.ledger_platform, company.ledger_platform),
        "ledger_platform": company.ledger_platform,
        "connection": CONNECTION_LABELS.get(connection.status if connection else None, "Unknown"),
        "connection_status": connection.status if connection else None,
        "organisation": connection.tenant_name if connection else None,
        "status": company.status, "status_label": COMPANY_LABELS.get(company.status, company.status),
        "frequency": company.frequency, "timezone": company.timezone, "base_currency": company.base_currency,
        "latest": HistoryRow.of(latest) if latest is not None else None,
        "dag_id": dag_id_for(company.id), "may_edit": may_edit(user, company.id), "may_run": may_run(user, company.id),
    }


def vat_policy(rate) -> str:
    if rate is None:
        return "No sales VAT"
    return f"VAT-inclusive prices, {(rate * 100).normalize():f}% VAT"

