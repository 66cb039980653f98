"""One DAG per company, built from its registry entry.

Parse time is sacred: this module imports only ``airflow.sdk``, the standard library and two light
modules of the package (``ledger_limits``' retry policy, ``notifiers``' failure callback), reads one
local JSON file (``dags/registry.json``, written by ``mamo_revenue.registry``), and makes no
network or database call. Everything heavy is imported inside the task bodies.

Operations (issue #5): ``extract`` runs in the ``mamo_api`` pool and ``post`` in its ledger's
(``xero_api``, ``zoho_books_api``); a failed task alerts by email and webhook (``notifiers``); a
ledger's daily cap reschedules the task until the limit resets instead of failing it
(``ledger_limits``); the per-tenant posting lock is taken inside ``sync.post_step`` itself.

Each company's DAG runs four tasks, one per step of the pipeline, so the UI shows where a period
stopped: ``extract`` (resolve the period, page Mamo, land snapshots, derive events) → ``build``
(the journal) → ``validate`` (every rule, against the ledger's chart and lock date) → ``post``
(idempotent by reference). Each task logs what finance reads as sync history.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, chain, get_parsing_context

from mamo_revenue.ledger_limits import RETRY_POLICY
from mamo_revenue.notifiers import SyncFailureNotifier

log = logging.getLogger(__name__)

DAG_PREFIX = "mamo_sync_"
#: One period per run: midnight to midnight (or Monday to Monday) in the company's own zone.
CRON_BY_FREQUENCY = {"daily": "0 0 * * *", "weekly": "0 0 * * 1"}
REGISTRY_ENV = "MAMO_REVENUE_REGISTRY"
#: One Airflow pool per external API (airflow_settings.yaml creates them): the Mamo API for
#: ``extract``, the company's ledger platform for ``post`` (``xero_api``, ``zoho_books_api``). A pool
#: caps concurrent calls across every company; the per-tenant limits are ``ledger_limits``'.
MAMO_POOL = "mamo_api"
#: The failure alert (email + webhook, configured by connections) and the sync record's outcome.
ON_FAILURE = SyncFailureNotifier()


def ledger_pool(platform: str) -> str:
    return f"{platform}_api"


def read_registry(path: Path) -> list[dict]:
    """The companies to build DAGs for, sorted by id. A missing file means none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        log.warning("No company registry at %s yet: run `mamo-revenue registry export`.", path)
        return []
    return sorted(json.loads(text)["companies"], key=lambda c: c["id"])


def dag_id_for(company_id: str) -> str:
    return DAG_PREFIX + company_id


# --- tasks: thin wrappers; the logic is mamo_revenue.sync --------------------------------------


def _run_step(step: str, company_id: str, **context) -> dict:
    """The body of every task: hand the step to ``mamo_revenue.sync`` with the run's facts."""
    from mamo_revenue import sync
    from mamo_revenue.errors import LedgerRateLimited
    from mamo_revenue.ledger_limits import reschedule_after_limit

    try:
        return sync.run_step(step, company_id, context)
    except LedgerRateLimited as exc:  # a daily or plan cap: pause until it resets, then resume
        raise reschedule_after_limit(exc) from exc


#: (task id, what it does): the four steps the UI shows for every period.
STEPS = (
    ("extract", "Resolve the period, page Mamo, land charge snapshots, derive the period's events."),
    ("build", "Turn the period's events into one journal (a pure function of events and settings)."),
    ("validate", "Check every rule against the mapping and the ledger's chart, currency and lock date."),
    ("post", "Post the journal once: sync record, ledger look-up by reference, idempotency key."),
)


def build_company_dag(company: dict) -> DAG:
    """The DAG of one registry entry. Same input, same DAG: ids and structure never depend on time."""
    company_id = company["id"]
    tz = company.get("timezone") or "Asia/Dubai"
    frequency = company.get("frequency") or "daily"
    active = company.get("status", "active") == "active"
    first_period = pendulum.parse(company["first_period"], tz=tz)
    default_args = {
        "owner": "finance-data",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=1),
        "retry_policy": RETRY_POLICY,
        "on_failure_callback": ON_FAILURE,
    }
    with DAG(
        dag_id=dag_id_for(company_id),
        description=f"Mamo revenue → {company.get('ledger_platform', 'ledger')} for {company.get('name', company_id)}",
        # A paused or disconnected company keeps its DAG (history stays visible) but schedules nothing.
        schedule=CronDataIntervalTimetable(CRON_BY_FREQUENCY[frequency], timezone=tz) if active else None,
        start_date=first_period,
        catchup=True,
        max_active_runs=1,  # periods in order: a refund lands in the first period that sees it
        is_paused_upon_creation=not active,
        default_args=default_args,
        tags=["mamo-revenue", company.get("ledger_platform", "ledger"), frequency],
        doc_md=(
            f"**{company.get('name', company_id)}** (`{company_id}`): {frequency} periods in {tz}, "
            f"posted to {company.get('ledger_platform', 'the ledger')} as one journal each. To sync one "
            "period by hand, trigger with the run configuration `{\"period\": \"2026-11-20\"}` "
            "(a day, or the week containing it, or `2026-W47`)."
        ),
    ) as dag:
        # Classic operators, not @task: a quarter of the parse cost for thousands of companies
        # (benchmarks/bench_dag_parse.py). Steps pass their results through XCom by task id.
        pools = {"extract": MAMO_POOL, "post": ledger_pool(company.get("ledger_platform") or "xero")}
        chain(*(
            PythonOperator(task_id=step, doc=doc, python_callable=_run_step, pool=pools.get(step, "default_pool"),
                           op_kwargs={"step": step, "company_id": company_id})
            for step, doc in STEPS
        ))
    return dag


def build_dags(companies: list[dict]) -> dict[str, DAG]:
    """Every company's DAG, or only the one a task process is parsing for."""
    wanted = get_parsing_context().dag_id
    if wanted and wanted.startswith(DAG_PREFIX):
        companies = [c for c in companies if dag_id_for(c["id"]) == wanted]
    return {dag_id_for(c["id"]): build_company_dag(c) for c in companies}
