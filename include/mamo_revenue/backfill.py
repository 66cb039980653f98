"""``mamo-revenue backfill``: sync a range of past periods for one, several or all companies.

One Airflow backfill per company DAG (``mamo_sync_<company>``), created through Airflow's REST API
(``POST /api/v2/backfills``, AIRFLOW3.md §10) with a bearer token from ``POST /auth/token``. The API
rather than ``airflow backfill create`` in a subprocess: it works from any machine that reaches the
api-server (a laptop, CI, the compose stack's ``airflow-cli``), needs no metadata-DB credentials
and no local Airflow install, and answers per company with the backfill's id or a clear refusal.

What the range means: ``--from`` and ``--to`` are days, both included, in each company's own time
zone; the command turns them into the logical dates of the company's DAG (a daily period's run has
the period's first day at 00:00 local as logical date; a weekly one the Monday of its week), so
``--from 2026-10-01`` starts with the period 2026-10-01 even for a company in Asia/Dubai.

Idempotence, at two levels:
- Airflow creates no run for a date that already has one (``--reprocess-behavior none``, the
  default); ``failed`` re-runs only failed runs (a period that failed, alone); ``completed`` re-runs
  every finished run.
- A run of a period that is already posted (or had nothing to post) does nothing: the sync record
  short-circuits it, the log says "already posted", the run succeeds. The command reports, from the
  sync records, how many periods of the range are already closed before it starts.

Catch-up and backfill, side by side: a company DAG catches up on its own (``catchup=True``, one
period at a time) while its next scheduled period is in the past. If that period falls inside the
range, Airflow 3.3's scheduler and the new backfill could create a run for the same date at the
same instant, and the scheduler dies on the duplicate (apache/airflow#59120). So the command pauses
such a DAG while Airflow creates the backfill's runs (``CATCH_UP_SETTLE`` seconds for the scheduler's
current loop to end, then the backfill, then unpause): the scheduler's catch-up then finds those
dates taken and moves on. A DAG that is paused on purpose stays paused (its runs wait; the command
says so).

Connection to Airflow: ``--api-url`` (or ``MAMO_REVENUE_AIRFLOW_URL``, default
``http://127.0.0.1:8080``) and either ``--token`` (``MAMO_REVENUE_AIRFLOW_TOKEN``) or a user and
password (``MAMO_REVENUE_AIRFLOW_USER`` / ``MAMO_REVENUE_AIRFLOW_PASSWORD``; the embedded install's
``admin``/``admin`` by default). The password and token are never printed.
"""

from __future__ import annotations

import os
import time as clock
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import requests

from mamo_revenue.errors import MamoRevenueError

DEFAULT_API_URL = "http://127.0.0.1:8080"
REPROCESS = ("none", "failed", "completed")
#: Periods of one company running at once. A period spends most of its time waiting for the scheduler
#: between its four tasks, so eight at a time keep a 2-core machine busy (docs/benchmarks.md); the
#: extracts share the ``mamo_api`` pool, posts to one ledger organisation take turns (the tenant lock),
#: and the periods still finish roughly in order (a refund is recognised by the first run that sees it).
DEFAULT_MAX_ACTIVE_RUNS = 8
#: Seconds for the scheduler's current loop to finish after a DAG is paused (its loop takes about 1 s).
CATCH_UP_SETTLE = 3.0


class BackfillError(MamoRevenueError):
    """Airflow refused or could not be reached."""

    guidance = ("Check that the Airflow api-server is up at the given URL and that the user or token may "
                "create backfills (role op or admin).")


@dataclass(frozen=True)
class Window:
    """The logical dates of a company's DAG for the periods from ``first`` to ``last``."""

    from_date: datetime
    to_date: datetime
    periods: int


def window(first: date, last: date, *, timezone: str, frequency: str) -> Window:
    """``first``..``last`` (days, both included, in the company's zone) as the DAG's logical dates."""
    from mamo_revenue.periods import Period

    if last < first:
        raise BackfillError(f"--to {last} is before --from {first}")
    start, end = Period.containing(first, frequency), Period.containing(last, frequency)
    zone = ZoneInfo(timezone)
    count = sum(1 for _ in start.iter_until(end))
    return Window(datetime.combine(start.first_day, time.min, zone), datetime.combine(end.first_day, time.min, zone),
                  count)


class AirflowApi:
    """The few REST calls a backfill needs, with a bearer token (fetched once from ``/auth/token``)."""

    def __init__(self, base_url: str | None = None, *, token: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 30.0):
        self.base_url = (base_url or os.environ.get("MAMO_REVENUE_AIRFLOW_URL") or DEFAULT_API_URL).rstrip("/")
        self._token = token or os.environ.get("MAMO_REVENUE_AIRFLOW_TOKEN") or None
        self._username = username or os.environ.get("MAMO_REVENUE_AIRFLOW_USER") or "admin"
        self._password = password or os.environ.get("MAMO_REVENUE_AIRFLOW_PASSWORD") or "admin"
        self.timeout = timeout
        self.session = requests.Session()

    def token(self) -> str:
        if self._token is None:
            try:
                answer = self.session.post(f"{self.base_url}/auth/token", timeout=self.timeout,
                                           json={"username": self._username, "password": self._password})
            except requests.RequestException as exc:
                raise BackfillError(f"Airflow at {self.base_url} did not answer ({type(exc).__name__})") from None
            if answer.status_code not in (200, 201):
                raise BackfillError(f"Airflow at {self.base_url} refused the login of {self._username!r} "
                                    f"(HTTP {answer.status_code})")
            self._token = answer.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=self.timeout,
                                        headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        except requests.RequestException as exc:
            raise BackfillError(f"Airflow at {self.base_url} did not answer {method} {path} "
                                f"({type(exc).__name__})") from None

    def dag(self, dag_id: str) -> dict | None:
        answer = self.call("GET", f"/dags/{dag_id}")
        return answer.json() if answer.status_code == 200 else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        answer = self.call("PATCH", f"/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": paused})
        if answer.status_code != 200:
            raise BackfillError(f"could not {'pause' if paused else 'unpause'} {dag_id} (HTTP {answer.status_code})")

    def backfill(self, dag_id: str, span: Window, *, reprocess: str, max_active_runs: int,
                 dry_run: bool = False) -> requests.Response:
        body = {"dag_id": dag_id, "from_date": span.from_date.isoformat(), "to_date": span.to_date.isoformat(),
                "reprocess_behavior": reprocess, "max_active_runs": max_active_runs, "run_backwards": False}
        return self.call("POST", "/backfills/dry_run" if dry_run else "/backfills", json=body)


@dataclass(frozen=True)
class Outcome:
    company: str
    dag_id: str
    ok: bool
    text: str
    backfill_id: int | None = None
    runs: int = 0


def error_detail(answer: requests.Response) -> str:
    """What Airflow's REST API said went wrong (``detail``; FastAPI's validation errors joined)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)[:300]


def backfill_company(api: AirflowApi, company, first: date, last: date, *, reprocess: str = "none",
                     max_active_runs: int = DEFAULT_MAX_ACTIVE_RUNS, dry_run: bool = False,
                     closed: int = 0) -> Outcome:
    """One company's backfill: the dry run (how many runs Airflow would create), then the backfill."""
    from mamo_revenue.dag_factory import dag_id_for

    dag_id = dag_id_for(company.id)
    span = window(first, last, timezone=company.timezone, frequency=company.frequency)
    already = f"; {closed} of its {span.periods} periods already posted or empty (their runs change nothing)" \
        if closed else ""
    preview = api.backfill(dag_id, span, reprocess=reprocess, max_active_runs=max_active_runs, dry_run=True)
    if preview.status_code != 200:
        return Outcome(company.id, dag_id, False, f"refused: {error_detail(preview)} (HTTP {preview.status_code})")
    runs = int(preview.json().get("total_entries", 0))
    if runs == 0:
        return Outcome(company.id, dag_id, True, f"nothing to run: every period of the range already has a run "
                       f"(use --reprocess-behavior failed to re-run failed ones){already}")
    if dry_run:
        return Outcome(company.id, dag_id, True, f"would create {runs} run(s){already}", runs=runs)
    dag = api.dag(dag_id) or {}
    paused_on_purpose = bool(dag.get("is_paused"))
    next_run = dag.get("next_dagrun_logical_date")
    catching_up = not paused_on_purpose and next_run is not None and \
        datetime.fromisoformat(next_run.replace("Z", "+00:00")) <= span.to_date
    if catching_up:  # keep the scheduler's catch-up from creating the same dates at the same instant
        api.set_paused(dag_id, True)
        clock.sleep(CATCH_UP_SETTLE)
    try:
        answer = api.backfill(dag_id, span, reprocess=reprocess, max_active_runs=max_active_runs)
    finally:
        if catching_up:
            api.set_paused(dag_id, False)
    if paused_on_purpose:
        already += f"; {dag_id} is paused: its runs start when you unpause it"
    if answer.status_code == 409:
        return Outcome(company.id, dag_id, False, f"a backfill is already running for {dag_id}: wait for it, or "
                       "cancel it in the UI (Browse > Backfills)")
    if answer.status_code not in (200, 201):
        return Outcome(company.id, dag_id, False, f"refused: {error_detail(answer)} (HTTP {answer.status_code})")
    backfill_id = int(answer.json()["id"])
    return Outcome(company.id, dag_id, True, f"backfill #{backfill_id}: {runs} run(s), at most {max_active_runs} at "
                   f"a time{already}", backfill_id=backfill_id, runs=runs)


def closed_periods_in(engine, company, first: date, last: date) -> int:
    """How many periods of ``first``..``last`` the sync records already call posted or nothing to post."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.periods import Period

    start, end = Period.containing(first, company.frequency), Period.containing(last, company.frequency)
    keys = {p.key for p in start.iter_until(end)}
    with session_scope(engine, read_only=True) as session:
        return len(keys & repo.closed_period_keys(session, company.id))


def companies_for(engine, ids: list[str] | None, every: bool) -> list:
    """The companies to backfill: the ones named, or every active one."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(engine, read_only=True) as session:
        known = {c.id: c for c in repo.list_companies(session)}
        for company in known.values():
            session.expunge(company)
    if every:
        return [c for c in sorted(known.values(), key=lambda c: c.id) if c.status == "active"]
    missing = [i for i in ids or [] if i not in known]
    if missing:
        raise BackfillError(f"unknown company: {', '.join(missing)}", guidance="See `mamo-revenue company list`.")
    return [known[i] for i in ids or []]


def run(engine, api: AirflowApi, *, first: date, last: date, companies: list, reprocess: str = "none",
        max_active_runs: int = DEFAULT_MAX_ACTIVE_RUNS, dry_run: bool = False, out=print) -> list[Outcome]:
    """Create (or preview) the backfills and print one line per company."""
    if last >= date.today():
        out("note: periods after yesterday are not complete yet; Airflow backfills only finished intervals.")
    verb = "Would backfill" if dry_run else "Backfilling"
    out(f"{verb} {first} to {last} for {len(companies)} compan{'y' if len(companies) == 1 else 'ies'} "
        f"through {api.base_url} (reprocess: {reprocess}):")
    outcomes = []
    for company in companies:
        try:
            closed = closed_periods_in(engine, company, first, last)
            outcome = backfill_company(api, company, first, last, reprocess=reprocess, dry_run=dry_run,
                                       max_active_runs=max_active_runs, closed=closed)
        except BackfillError as exc:
            from mamo_revenue.dag_factory import dag_id_for

            outcome = Outcome(company.id, dag_id_for(company.id), False, exc.args[0])
        outcomes.append(outcome)
        out(f"  {'✓' if outcome.ok else '✗'} {outcome.company:<20} {outcome.dag_id:<32} {outcome.text}")
    if not dry_run and any(o.backfill_id for o in outcomes):
        out(f"Follow them in the UI ({api.base_url}/dags/<dag id>) or with `mamo-revenue history <company>`.")
    return outcomes
