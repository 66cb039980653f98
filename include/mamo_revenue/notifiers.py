"""Alerts: a failed sync task, or a period still not posted long after it closed, told to the people
on call by email (SMTP) and by a Slack-compatible webhook.

Channels are Airflow connections, looked up when an alert is sent (never while a DAG file parses):

- ``mamo_alerts_smtp`` (type ``smtp``): host, port, login/password when the server wants them; extra
  ``to`` (comma-separated recipients), ``from_email``, ``disable_tls``/``disable_ssl`` as
  ``SmtpHook`` reads them;
- ``mamo_alerts_slack`` (type ``slackwebhook``): the incoming webhook's URL as ``SlackWebhookHook``
  reads it (host + the token in ``password``, or the whole URL in ``password``). Any receiver that
  takes Slack's ``{"text": …, "blocks": …}`` JSON works (Mattermost, Rocket.Chat, Teams via a relay).

A missing connection turns its channel off (logged once, never an error); a channel that fails is
logged and the other still goes out: an alert must never fail the task's own bookkeeping.

Invariants of every message: it names the company, the period, the failed step, the error class and
what to do, and links to the run's log (``[api] base_url`` of the Airflow config, the address users
reach the UI at); it never carries a secret: the error text goes through Airflow's secrets masker
(connection passwords and sensitive values seen by the task) and through ``redact``, which removes
bearer tokens, API keys, JWTs and long opaque strings whatever their source.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from airflow.sdk import BaseNotifier

log = logging.getLogger("mamo_revenue.notifiers")

SMTP_CONN_ID = "mamo_alerts_smtp"
SLACK_CONN_ID = "mamo_alerts_slack"
DAG_PREFIX = "mamo_sync_"

#: Guidance for failures that are not the product's own errors (those carry their own).
_GUIDANCE = {
    "AirflowTaskTimeout": "The step ran past its time limit; the period is retried by clearing the task. If it "
                          "recurs, check whether Mamo or the ledger is slow, then re-run the period.",
    "AirflowTaskTerminated": "The task was stopped from outside (a person, or the worker went away); clear it to "
                             "re-run the period.",
}
_DEFAULT_GUIDANCE = "Read the run's log (link below); when the cause is fixed, clear the failed task to re-run the period."

# --- redaction -----------------------------------------------------------------------------------------

_SECRET_PATTERNS = [  # what is kept is the named group ``keep``; the rest of a match becomes ***
    # Authorization headers: Bearer, Zoho-oauthtoken, Basic
    re.compile(r"(?i)(?P<keep>\b(?:bearer|zoho-oauthtoken)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?P<keep>\bBasic\s+)[A-Za-z0-9+/]{8,}={0,2}"),
    # key=value / "key": "value" for secret-looking keys (tokens, secrets, passwords, API keys)
    re.compile(r"""(?ix)(?P<keep>["']?\b[\w-]*(?:token|secret|password|passwd|api[_-]?key|apikey|authorization|
                 code_verifier)[\w-]*["']?\s*[:=]\s*["']?)[^\s"'&,;}]{8,}"""),
    # JSON Web Tokens
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # API keys in the common prefixed forms (Mamo's sk-…, Slack's xox…, GitHub's ghp_…)
    re.compile(r"\b(?:sk|pk|rk)[-_][A-Za-z0-9_-]{6,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{16,}"),
    # user:password@ in URLs
    re.compile(r"(?P<keep>://[^/\s:@]+:)[^/\s@]+(?=@)"),
]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_OPAQUE = re.compile(r"[A-Za-z0-9_+/=.-]{32,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without anything that looks like a credential, and without any of ``secrets``.

    Keeps what finance needs to read (charge ids, references, account codes, UUIDs of journals and
    organisations, dates); removes bearer tokens, secret-named fields' values, JWTs, prefixed API
    keys, URL passwords and opaque strings of 32+ characters mixing letters and digits.
    """
    from mamo_revenue.airflow_settings import redact as strip_secrets

    text = strip_secrets(text, [s for s in secrets if s and len(s) >= 4])
    try:  # what Airflow masks in this process: connection passwords and sensitive values it served
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact

        text = str(airflow_redact(text))
    except Exception:  # pragma: no cover - masker unavailable outside a task: the patterns still apply
        pass
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.groupdict().get("keep") or "") + "***", text)

    def opaque(match: re.Match) -> str:
        word = match.group(0)
        mixed = re.search(r"[A-Za-z]", word) and re.search(r"\d", word)
        return word if _UUID.match(word) or not mixed or "***" in word else "***"

    return _OPAQUE.sub(opaque, text)


# --- what an alert says ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert, already free of secrets: ``kind`` is ``failure`` or ``deadline``."""

    kind: str
    company: str
    period: str | None
    step: str | None
    error_class: str
    message: str
    guidance: str
    log_url: str | None
    company_name: str | None = None
    run: str | None = None
    details: tuple[tuple[str, str], ...] = field(default=())

    @property
    def subject(self) -> str:
        period = f", period {self.period}" if self.period else ""
        if self.kind == "deadline":
            return f"[Mamo revenue] Not posted yet: {self.company}{period}"
        return f"[Mamo revenue] Sync failed: {self.company}{period}, step {self.step or '?'}"

    def rows(self) -> list[tuple[str, str]]:
        company = f"{self.company} ({self.company_name})" if self.company_name else self.company
        rows = [("Company", company), ("Period", self.period or "unknown (the run failed before resolving it)")]
        if self.step:
            rows.append(("Failed step", self.step))
        rows += [("Error", f"{self.error_class}: {self.message}" if self.message else self.error_class),
                 ("What to do", self.guidance)]
        rows += list(self.details)
        if self.run:
            rows.append(("Run", self.run))
        rows.append(("Logs", self.log_url or "(no link: set [api] base_url in the Airflow config)"))
        return rows

    def text(self) -> str:
        width = max(len(name) for name, _ in self.rows()) + 1
        return "\n".join([self.subject, ""] + [f"{name + ':':<{width}} {value}" for name, value in self.rows()])

    def html(self) -> str:
        cells = "".join(
            f"<tr><th align='left' valign='top'>{html.escape(name)}</th><td>"
            + (f"<a href='{html.escape(value)}'>{html.escape(value)}</a>" if value.startswith("http")
               else html.escape(value)) + "</td></tr>"
            for name, value in self.rows())
        return f"<p><b>{html.escape(self.subject)}</b></p><table>{cells}</table>"

    def slack_payload(self) -> dict:
        """Slack's incoming-webhook JSON: ``text`` for notifications and plain receivers, ``blocks`` for Slack."""
        fields = [{"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"}
                  for name, value in self.rows() if name != "Logs"]
        blocks = [{"type": "header", "text": {"type": "plain_text", "text": self.subject[:150]}},
                  {"type": "section", "fields": fields[:10]}]
        if self.log_url:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.log_url}|Open the run's log>"}})
        return {"text": self.text(), "blocks": blocks}


def _slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:1900]


def airflow_base_url() -> str | None:
    """Where people reach the Airflow UI: ``[api] base_url`` (``AIRFLOW__API__BASE_URL``)."""
    try:
        from airflow.configuration import conf

        value = conf.get("api", "base_url", fallback=None)
    except Exception:  # pragma: no cover
        return None
    return value.rstrip("/") if value else None


def run_url(dag_id: str, run_id: str | None = None, task_id: str | None = None, try_number: int | None = None,
            *, base_url: str | None = None) -> str | None:
    """The UI page of a DAG, a run, or one task's log in a run (the same shape as Airflow's own links)."""
    base = base_url or airflow_base_url()
    if not base:
        return None
    url = f"{base.rstrip('/')}/dags/{quote(dag_id)}"
    if run_id:
        url += f"/runs/{quote(run_id)}"
        if task_id:
            url += f"/tasks/{quote(task_id)}"
            if try_number:
                url += f"?try_number={try_number}"
    return url


def company_of(dag_id: str) -> str:
    return dag_id.removeprefix(DAG_PREFIX)


def _company_name(company_id: str) -> str | None:
    """The company's name from the registry file the DAGs are built from (a local read; None if absent)."""
    try:
        import os
        from pathlib import Path

        from mamo_revenue.dag_factory import REGISTRY_ENV, read_registry

        path = os.environ.get(REGISTRY_ENV)
        if not path:
            from airflow.configuration import conf

            path = str(Path(conf.get("core", "dags_folder")) / "registry.json")
        if not Path(path).is_file():
            return None
        return next((c.get("name") for c in read_registry(Path(path)) if c["id"] == company_id), None)
    except Exception:
        return None


def _period_from_run(context, ti) -> str | None:
    """The period of a run that failed before saying it: extract's result, else the run's conf or interval."""
    try:
        extracted = ti.xcom_pull(task_ids="extract") if ti is not None else None
        if isinstance(extracted, dict) and extracted.get("period"):
            return str(extracted["period"])
    except Exception:
        pass
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("period"):
        return str(conf["period"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    dag = context.get("dag")
    if start is not None and end is not None and end > start and dag is not None:
        try:
            from mamo_revenue.periods import Period

            frequency = "weekly" if "weekly" in (dag.tags or ()) else "daily"
            tz = str(getattr(dag.timetable, "timezone", "UTC"))
            return Period.from_interval(start, end, tz, frequency).label
        except Exception:
            return None
    return None


def failure_alert(context) -> Alert:
    """The alert for a failed sync task, from its callback context."""
    ti = context.get("ti")
    exc = context.get("exception")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    facts = getattr(exc, "mamo_sync", None) or {}
    company = facts.get("company") or company_of(dag_id)
    error_class = type(exc).__name__ if exc is not None else "UnknownError"
    raw = (exc.args[0] if exc is not None and exc.args else str(exc or "")) or ""
    guidance = getattr(exc, "guidance", None) or _GUIDANCE.get(error_class, _DEFAULT_GUIDANCE)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    task_id = getattr(ti, "task_id", None)
    try_number = getattr(ti, "try_number", None)
    return Alert(
        kind="failure", company=company, company_name=_company_name(company),
        period=facts.get("period") or _period_from_run(context, ti), step=facts.get("step") or task_id,
        error_class=error_class, message=redact(str(raw))[:2000], guidance=redact(str(guidance)),
        log_url=run_url(dag_id, run_id, task_id, try_number),
        run=f"{dag_id} / {run_id}" + (f" (try {try_number})" if try_number else ""))


# --- sending ------------------------------------------------------------------------------------------------


def _connection(conn_id: str):
    """The channel's connection, or None when it is not configured (the channel is off)."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no way to reach the connections at all
        log.info("Alert channel %s is off: no connection (%s).", conn_id, type(exc).__name__)
        return None


def send_email(alert: Alert, conn_id: str = SMTP_CONN_ID) -> bool:
    """Mail ``alert`` to the connection's ``to``; False when the channel is off or has no recipient."""
    conn = _connection(conn_id)
    if conn is None:
        return False
    recipients = (conn.extra_dejson or {}).get("to")
    if not recipients:
        log.warning("Alert channel %s has no recipients: set extra \"to\".", conn_id)
        return False
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as smtp:
        smtp.send_email_smtp(to=recipients, subject=alert.subject, html_content=alert.html(),
                             custom_headers={"X-Mamo-Alert": alert.kind})
    return True


def send_webhook(alert: Alert, conn_id: str = SLACK_CONN_ID) -> bool:
    """Post ``alert`` to the Slack-compatible webhook; False when the channel is off."""
    if _connection(conn_id) is None:
        return False
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    payload = alert.slack_payload()
    SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=payload["text"], blocks=payload["blocks"])
    return True


def dispatch(alert: Alert, *, smtp_conn_id: str = SMTP_CONN_ID, slack_conn_id: str = SLACK_CONN_ID) -> list[str]:
    """Send ``alert`` on every configured channel; returns the channels it went out on. Never raises."""
    sent = []
    for name, send, conn_id in (("email", send_email, smtp_conn_id), ("webhook", send_webhook, slack_conn_id)):
        try:
            if send(alert, conn_id):
                sent.append(name)
        except Exception as exc:
            log.warning("Alert by %s (%s) failed: %s", name, conn_id, redact(f"{type(exc).__name__}: {exc}"))
    log.info("Alert %r sent by %s.", alert.subject, ", ".join(sent) or "no channel (none configured)")
    return sent


class SyncFailureNotifier(BaseNotifier):
    """Task failure callback: the alert by email and webhook, and the period's sync record marked failed
    when the failure happened outside the steps' own bookkeeping (a timeout, a killed task)."""

    def __init__(self, *, smtp_conn_id: str = SMTP_CONN_ID, slack_conn_id: str = SLACK_CONN_ID):
        super().__init__()
        self.smtp_conn_id, self.slack_conn_id = smtp_conn_id, slack_conn_id

    def notify(self, context) -> None:
        alert = failure_alert(context)
        log.error("%s", alert.text())
        record_failure_outcome(context, alert)
        dispatch(alert, smtp_conn_id=self.smtp_conn_id, slack_conn_id=self.slack_conn_id)


def record_failure_outcome(context, alert: Alert) -> None:
    """Make sure the Revenue accounting page sees the failure: the steps record their own errors; this
    covers the ones that never reached a step (timeouts, kills, a run without a resolvable period)."""
    exc = context.get("exception")
    if getattr(exc, "mamo_sync", None) or not alert.period:
        return
    try:
        from mamo_revenue.db import repository as repo
        from mamo_revenue.db.session import session_scope
        from mamo_revenue.journal import reference_for
        from mamo_revenue.periods import Period
        from mamo_revenue.sync import product_engine

        engine = product_engine()
        with session_scope(engine) as session:
            company = repo.get_company(session, alert.company)
            if company is None:
                return
            period = Period.parse(alert.period, company.frequency)
            repo.mark_failed(session, alert.company, period, error_class=alert.error_class,
                             message=f"{alert.step}: {alert.message}", guidance=alert.guidance,
                             run_id=context.get("run_id"), reference=reference_for(alert.company, period))
    except Exception as exc2:
        log.warning("Could not record the failure in the sync record: %s", type(exc2).__name__)


def deadline_alert(company: str, period: str, status: str, hours: float, *, dag_id: str,
                   run_id: str | None = None, error: str | None = None, guidance: str | None = None,
                   company_name: str | None = None, closed_at: datetime | None = None) -> Alert:
    """The alert for a period still not posted ``hours`` after it closed."""
    state = {"failed": "its last run failed", "running": "a run is still posting it",
             "pending": "it was never claimed by a run", "missing": "no run has synced it"}.get(status, status)
    return Alert(
        kind="deadline", company=company, company_name=company_name, period=period, step=None,
        error_class="PeriodNotPosted",
        message=redact(f"period {period} closed {hours:g} h ago and is not posted: {state}"
                       + (f" ({error})" if error else "")),
        guidance=redact(guidance) if guidance else (
            "Open the company's DAG: unpause it, or re-run the period (clear its run, or "
            "`mamo-revenue backfill --from P --to P --company C`); if the run failed, follow its error first."),
        log_url=run_url(dag_id, run_id),
        details=(("Closed at", f"{closed_at:%Y-%m-%d %H:%M} UTC"),) if closed_at else (),
        run=f"{dag_id} / {run_id}" if run_id else dag_id)
