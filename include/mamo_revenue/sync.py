"""The four steps of one (company, period) sync: extract → build → validate → post.

Each step is idempotent per (company, period): re-running any of them, or the whole DAG, leaves the
product DB and the ledger as if it ran once. The period is resolved once, by ``extract``, and
handed on through XCom; nothing else reads ``ds`` or the logical date.

Exactly once: the run claims the period's sync record before it derives anything (so no other run
can add events to a period being posted), looks the reference up in the ledger before posting
(a crash after the ledger accepted the journal is recovered, not repeated), and sends the reference
as the ledger's idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mamo_revenue import errors
from mamo_revenue.journal import Journal, JournalLine, build_journal, reference_for
from mamo_revenue.periods import Frequency, Period

log = logging.getLogger("mamo_revenue.sync")

#: Refunds are possible for six months after a payment (MAMO_API.md §6), plus a margin.
REFUND_LOOKBACK = timedelta(days=200)
PREVIOUS_STEP = {"build": "extract", "validate": "build", "post": "validate"}


@dataclass(frozen=True)
class RunInfo:
    """What a step needs to know about the Airflow run it belongs to."""

    run_id: str
    explicit_period: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    run_after: datetime | None = None

    @classmethod
    def from_context(cls, context) -> RunInfo:
        dag_run = context["dag_run"]
        conf = getattr(dag_run, "conf", None) or {}
        params = context.get("params") or {}
        return cls(
            run_id=context["run_id"],
            explicit_period=params.get("period") or conf.get("period"),
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            run_after=getattr(dag_run, "run_after", None),
        )


def resolve_period(company, info: RunInfo) -> Period:
    """An explicit period first (manual run, backfill conf), then a data interval of non-zero
    width, then the last complete period before ``run_after``."""
    frequency = Frequency(company.frequency)
    if info.explicit_period:
        return Period.parse(str(info.explicit_period), frequency)
    start, end = info.interval_start, info.interval_end
    if start is not None and end is not None and end > start:
        return Period.from_interval(start, end, company.timezone, frequency)
    if info.run_after is None:
        raise ValueError("the run has no period: give {\"period\": \"YYYY-MM-DD\"} in the run configuration")
    return Period.last_complete_before(info.run_after, company.timezone, frequency)


def lookback_start(company, period: Period, now: datetime) -> datetime:
    """The oldest ``created_date`` (local, naive) this run must read.

    The period's own charges, and every charge that may have gained a refund since the last scan:
    refunds come up to six months after a payment, so read back 200 days from the earlier of the
    last scan and now. Never before the company's first period.
    """
    zone = ZoneInfo(company.timezone)
    anchor = min(filter(None, [now, company.last_scan_at]))
    anchor_local = anchor.astimezone(zone).replace(tzinfo=None)
    first = Period.containing(company.first_period, company.frequency).local_start
    return max(first, min(period.local_start, anchor_local - REFUND_LOOKBACK))


# --- the product DB and the ledger -------------------------------------------------------------


def product_engine():
    from mamo_revenue.db.session import engine_for_connection

    return engine_for_connection()


def ledger_hook_for(company, engine):
    """The company's ledger hook, with its tokens kept in the product DB."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.crypto import load_cipher
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.db.tokens import DbTokenStore
    from mamo_revenue.hooks.registry import ledger_hook_class

    with session_scope(engine) as session:
        connection = repo.get_ledger_connection(session, company.id)
        if connection is None or connection.status != "connected":
            state = "not connected" if connection is None else connection.status.replace("_", " ")
            raise errors.LedgerAuthError(
                f"company {company.id}: the ledger is {state}",
                guidance="Connect the company's ledger (mamo-revenue connect, or the Revenue accounting page).",
            )
        tenant_id = connection.tenant_id
    hook_class = ledger_hook_class(company.ledger_platform)
    return hook_class(
        **{hook_class.conn_name_attr: company.ledger_conn_id},
        token_store=DbTokenStore(engine, company.id, load_cipher()),
        tenant_id=tenant_id,
    )


@contextmanager
def recording_failure(engine, company_id: str, period: Period, step: str, run_id: str) -> Iterator[None]:
    """Any error leaves the sync record failed with its class and guidance, then propagates."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    try:
        yield
    except (errors.PeriodBusy, errors.LedgerRateLimited):
        raise  # another run owns the record, or the task pauses until the ledger's limit resets
    except Exception as exc:
        guidance = getattr(exc, "guidance", errors.MamoRevenueError.guidance)
        message = exc.args[0] if isinstance(exc, errors.MamoRevenueError) else str(exc)
        exc.mamo_sync = {"company": company_id, "period": period.label, "step": step}  # for the alert
        with session_scope(engine) as session:
            repo.mark_failed(session, company_id, period, error_class=type(exc).__name__,
                             message=f"{step}: {message}", guidance=guidance, run_id=run_id)
        log.error("SYNC FAILED at %s: company %s, period %s: %s: %s\nWhat to do: %s",
                  step, company_id, period.label, type(exc).__name__, message, guidance)
        raise


# --- steps -------------------------------------------------------------------------------------


def _company(engine, company_id: str):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(engine) as session:
        company = repo.get_company(session, company_id)
        if company is None:
            raise errors.MamoRevenueError(f"company {company_id} is not in the product database",
                                          guidance="Add the company, or remove its DAG from the registry.")
        session.expunge(company)
        return company


def _claim(engine, company_id: str, period: Period, run_id: str):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(engine) as session:
        return repo.claim_period(session, company_id, period, reference_for(company_id, period), run_id)


def _closed_result(claim, company, period: Period) -> dict:
    record = claim.record
    status = str(claim.status.value)
    log.info("Period %s of %s is already %s (journal %s in the ledger, reference %s): skipped, nothing is "
             "posted again.",
             period.label, company.id, status.replace("_", " "), record.ledger_journal_id or "—",
             record.reference)
    return {"state": "already_done", "status": status, "period": period.label,
            "frequency": company.frequency, "reference": record.reference,
            "ledger_journal_id": record.ledger_journal_id}


def extract_step(company_id: str, info: RunInfo, *, engine=None, now: datetime | None = None,
                 mamo_hook=None) -> dict:
    """Claim the period, page Mamo, land snapshots, derive and record the period's new events."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.events import announcements_frame, derive_events, refunds_as_of

    engine = engine or product_engine()
    now = now or datetime.now(UTC)
    company = _company(engine, company_id)
    period = resolve_period(company, info)
    claim = _claim(engine, company_id, period, info.run_id)
    if claim.already_closed:
        return _closed_result(claim, company, period)
    with recording_failure(engine, company_id, period, "extract", info.run_id):
        created_from = lookback_start(company, period, now)
        if mamo_hook is None:
            from mamo_revenue.db.company_secrets import mamo_hook_for

            mamo_hook = mamo_hook_for(company)  # the company's own key when it has one, else the connection's
        charges = mamo_hook.fetch_charges(created_from=created_from, tz=company.timezone,
                                          company=company_id, period=period.label)
        with session_scope(engine) as session:
            repo.upsert_snapshots(session, company_id, charges, seen_at=now)
            repo.touch_last_scan(session, company_id, now)
        charge_states = repo.load_charge_state_frame(engine, company_id, created_from)
        with session_scope(engine) as session:
            closed = repo.closed_period_keys(session, company_id)
            announced = announcements_frame(repo.refund_announcements(session, company_id))
        # a refund Mamo announced (webhook) after the period ended waits for its own period's run
        period_end = period.local_end.replace(tzinfo=ZoneInfo(company.timezone))
        charge_states = refunds_as_of(charge_states, announced, period_end)
        new_events = derive_events(charge_states, period=period, base_currency=company.base_currency,
                                   closed_periods=closed, company=company_id)
        with session_scope(engine) as session:
            inserted = repo.record_events(session, company_id, new_events, info.run_id)
    counts = {str(k): int(v) for k, v in new_events["kind"].value_counts().items() if v}
    log.info("Company %s, period %s: read %d Mamo charges created since %s; recorded %d new events %s.",
             company_id, period.label, len(charges), created_from.isoformat(sep=" "), inserted, counts)
    return {"state": "extracted", "period": period.label, "frequency": company.frequency,
            "charges_read": len(charges), "events_recorded": inserted}


def build_step(company_id: str, extracted: dict, info: RunInfo, *, engine=None) -> dict:
    """The period's journal, from its recorded events; an empty period ends here as nothing to post."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    if extracted["state"] != "extracted":
        return extracted
    engine = engine or product_engine()
    company = _company(engine, company_id)
    period = Period.parse(extracted["period"], extracted["frequency"])
    with recording_failure(engine, company_id, period, "build", info.run_id):
        events = repo.events_for_period(engine, company_id, period.key)
        journal = build_journal(events, company_id=company_id, period=period,
                                sales_vat_rate=company.sales_vat_rate)
        if not journal.lines:
            with session_scope(engine) as session:
                repo.mark_nothing_to_post(session, company_id, period.key, run_id=info.run_id)
            log.info("Company %s, period %s: no Mamo activity, nothing to post.", company_id, period.label)
            return {"state": "nothing_to_post", "period": period.label, "frequency": company.frequency}
    log.info("Company %s, period %s: built journal from %d events:\n%s", company_id, period.label,
             len(events), format_journal(journal))
    return {"state": "built", "period": period.label, "frequency": company.frequency,
            "journal": journal_to_dict(journal)}


def validate_step(company_id: str, built: dict, info: RunInfo, *, engine=None, ledger=None,
                  facts_cache=None) -> dict:
    """Every rule at once, against the mapping and the ledger's chart of accounts and settings.

    With ``facts_cache`` the chart and settings may come from a recent read (``ledger_limits``); a
    journal they would refuse is checked again against facts read fresh, so a cache never fails one."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.ledger_limits import ledger_facts
    from mamo_revenue.validation import raise_for_problems, validate_journal

    if built["state"] != "built":
        return built
    engine = engine or product_engine()
    company = _company(engine, company_id)
    journal = journal_from_dict(built["journal"])
    with recording_failure(engine, company_id, journal.period, "validate", info.run_id):
        with session_scope(engine) as session:
            mapping = repo.get_mappings(session, company_id)
        ledger = ledger or ledger_hook_for(company, engine)
        facts = ledger_facts(ledger, facts_cache)
        problems = validate_journal(journal, mapping=mapping, accounts=facts.accounts, settings=facts.settings,
                                    base_currency=company.base_currency)
        if problems and facts.cached:
            facts = ledger_facts(ledger, facts_cache, refresh=True)
            problems = validate_journal(journal, mapping=mapping, accounts=facts.accounts,
                                        settings=facts.settings, base_currency=company.base_currency)
        raise_for_problems(journal, problems)
        settings = facts.settings
    log.info("Company %s, period %s: journal %s is balanced (%s = %s) and every account is active in %s.",
             company_id, journal.period.label, journal.reference, _fmt(journal.total_debit),
             _fmt(journal.total_credit), settings.organisation_name)
    return {**built, "state": "validated"}


def post_step(company_id: str, validated: dict, info: RunInfo, *, engine=None, ledger=None,
              facts_cache=None) -> dict:
    """Post once. A journal already in the ledger under this reference is recorded, not re-posted.

    When the ledger refuses the journal as invalid, the tenant's cached facts (``facts_cache``, which
    validate trusted) are dropped, so the next validation reads the ledger and names the problem."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.hooks.ledger import JournalRequest
    from mamo_revenue.ledger_limits import forget_ledger_facts, tenant_lock

    if validated["state"] != "validated":
        return validated
    engine = engine or product_engine()
    company = _company(engine, company_id)
    journal = journal_from_dict(validated["journal"])
    period = journal.period
    claim = _claim(engine, company_id, period, info.run_id)  # renews our claim; refuses a stranger's
    if claim.already_closed:
        return _closed_result(claim, company, period)
    with recording_failure(engine, company_id, period, "post", info.run_id):
        with session_scope(engine) as session:
            mapping = repo.get_mappings(session, company_id)
        ledger = ledger or ledger_hook_for(company, engine)
        lines = tuple(_ledger_lines(journal, mapping))
        # One post at a time per ledger organisation, whatever started this run (ledger_limits).
        with tenant_lock(engine, ledger.platform, getattr(ledger, "tenant_id", None) or company_id):
            existing = ledger.find_journal(journal.reference)
            if existing is not None and existing.posted:
                _require_same_lines(existing, lines, company_id, period)
                posted, how = existing, "found already posted in the ledger (an earlier attempt landed)"
            else:
                # A journal voided in the ledger (a re-sync) is replaced under the same reference; the
                # idempotency key names the voided one, so a retry of this post is still recognised.
                key = journal.reference if existing is None else f"{journal.reference}:{existing.ledger_id}"
                try:
                    posted = ledger.post_journal(
                        JournalRequest(reference=journal.reference, journal_date=journal.journal_date,
                                       narration=journal.narration, lines=lines),
                        idempotency_key=key)
                except errors.LedgerValidationError:
                    forget_ledger_facts(ledger, facts_cache)
                    raise
                how = "posted" if existing is None else f"posted again (journal {existing.ledger_id} is {existing.status})"
        with session_scope(engine) as session:
            repo.mark_posted(session, company_id, period.key, ledger_journal_id=posted.ledger_id,
                             ledger_url=posted.url, totals=journal.totals, line_count=len(journal.lines),
                             run_id=info.run_id)
    log.info("Company %s, period %s: journal %s %s as %s journal %s%s.", company_id, period.label,
             journal.reference, how, ledger.platform, posted.ledger_id,
             f" ({posted.url})" if posted.url else "")
    return {"state": "posted", "period": period.label, "reference": journal.reference,
            "ledger_journal_id": posted.ledger_id, "ledger_url": posted.url, "how": how}


def _ledger_lines(journal: Journal, mapping: dict):
    from mamo_revenue.hooks.ledger import LedgerLine
    from mamo_revenue.journal import resolve_account

    for line in journal.lines:
        account = resolve_account(line.category, mapping)
        yield LedgerLine(account_id=account.account_id, account_code=account.code, side=line.side,
                         amount_minor=line.amount_minor, description=line.description)


def _require_same_lines(existing, lines, company_id: str, period: Period) -> None:
    """A journal found under our reference counts as ours only if it says what we would post."""
    def shape(items):
        return sorted((line.account_id, str(line.side), line.amount_minor) for line in items)

    if shape(existing.lines) != shape(lines):
        raise errors.LedgerConflict(
            f"company {company_id}, period {period.label}: ledger journal {existing.ledger_id} carries this "
            f"period's reference but its lines differ from the journal the period's events give",
            guidance="Void that journal in the ledger, then re-sync the period.")


STEPS = {"extract": extract_step, "build": build_step, "validate": validate_step, "post": post_step}


def run_step(step: str, company_id: str, context) -> dict:
    """Entry point of the DAG's tasks: the step's input is the previous step's XCom."""
    info = RunInfo.from_context(context)
    if step == "extract":
        return extract_step(company_id, info)
    previous = context["ti"].xcom_pull(task_ids=PREVIOUS_STEP[step])
    if step in ("validate", "post"):
        from mamo_revenue.ledger_limits import VariableFactsCache

        return STEPS[step](company_id, previous, info, facts_cache=VariableFactsCache())
    return STEPS[step](company_id, previous, info)


# --- journal (de)serialisation and the finance-readable table ----------------------------------


def journal_to_dict(journal: Journal) -> dict:
    return {
        "company_id": journal.company_id, "period": journal.period.label,
        "frequency": str(journal.period.frequency), "reference": journal.reference,
        "narration": journal.narration, "totals": dict(journal.totals),
        "lines": [{"category": str(line.category), "side": str(line.side), "amount_minor": line.amount_minor,
                   "description": line.description} for line in journal.lines],
    }


def journal_from_dict(data: dict) -> Journal:
    from mamo_revenue.hooks.ledger import Side
    from mamo_revenue.journal import Category

    return Journal(
        company_id=data["company_id"], period=Period.parse(data["period"], data["frequency"]),
        reference=data["reference"], narration=data["narration"], totals=dict(data["totals"]),
        lines=tuple(JournalLine(category=Category(line["category"]), side=Side(line["side"]),
                                amount_minor=int(line["amount_minor"]), description=line["description"])
                    for line in data["lines"]),
    )


def _fmt(minor: int) -> str:
    from mamo_revenue.money import format_minor

    return format_minor(minor)


def format_journal(journal: Journal, mapping: dict | None = None) -> str:
    """The journal as a debit/credit table, as finance reads it in the task log and the demo."""
    from mamo_revenue.journal import resolve_account

    rows = []
    for line in journal.lines:
        account = resolve_account(line.category, mapping) if mapping else None
        label = f"{account.code or account.account_id} {account.name or ''}".strip() if account else ""
        debit = _fmt(line.amount_minor) if line.side == "debit" else ""
        credit = _fmt(line.amount_minor) if line.side == "credit" else ""
        rows.append((line.description, label, debit, credit))
    rows.append(("total", "", _fmt(journal.total_debit), _fmt(journal.total_credit)))
    widths = [max(len(r[i]) for r in rows + [("line", "account", "debit", "credit")]) for i in range(4)]
    header = ("line", "account", "debit", "credit")
    out = [f"{journal.reference}  ({journal.narration})"]
    for row in [header, *rows]:
        out.append(f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}")
    return "\n".join(out)
