"""Xero: the accounting API behind ``LedgerHook``, on the shared ``OAuthLedgerHook``.

What is Xero's own here (LEDGER_APIS.md §1); the token lock, the one forced refresh on a 401, the
retry predicate and the logging rules are ``OAuthLedgerHook``'s (§5):

- Refresh tokens rotate on every refresh: the new one is saved before the new access token is used.
- ``invalid_grant``, a second 401 and any 403 mean a person must reconnect Xero.
- Timeouts, broken connections and 5xx retry with the same ``Idempotency-Key``; a 429 waits
  ``Retry-After`` up to ``max_rate_limit_wait``, beyond that ``LedgerRateLimited``; other 4xx never retry.
- Amounts are signed ``LineAmount`` values (debits positive, credits negative), made from ``Decimal``.
- A journal counts as posted only as Xero returns it: an id, Status POSTED, no errors or warnings,
  and the same accounts and amounts line by line. A void sets Status VOIDED (a draft is DELETED).

The connect flow's helpers (``authorization_url``, ``exchange_code``, ``list_tenants``, ``disconnect``,
``revoke``) live in ``xero_identity`` and are importable from here too.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerConflict,
    LedgerError,
    LedgerLockedPeriod,
    LedgerValidationError,
)
from mamo_revenue.hooks.ledger import (
    JournalRequest,
    LedgerAccount,
    LedgerLine,
    LedgerSettings,
    PostedJournal,
    Side,
    line_label,
)
from mamo_revenue.hooks.oauth import token_set
from mamo_revenue.hooks.oauth_ledger import OAuthLedgerHook, connection_extra, is_retryable
from mamo_revenue.hooks.tokens import TokenSet, TokenStore
from mamo_revenue.hooks.xero_identity import (
    DEFAULT_SCOPES,
    RECONNECT,
    XERO_API_BASE,
    XERO_AUTHORIZE_URL,
    XERO_CONNECTIONS_URL,
    XERO_JOURNAL_URL,
    XERO_REVOCATION_URL,
    XERO_TOKEN_URL,
    XeroParams,
    authorization_url,
    check_client_credentials,
    disconnect,
    dumps_json,
    exchange_code,
    list_tenants,
    loads_json,
    post_token_endpoint,
    refresh_tokens,
    revoke,
)
from mamo_revenue.money import to_decimal, to_minor

__all__ = [
    "XeroHook",
    "XeroParams",
    "authorization_url",
    "check_client_credentials",
    "disconnect",
    "dumps_json",
    "exchange_code",
    "is_retryable",
    "list_tenants",
    "parse_xero_date",
    "refresh_tokens",
    "revoke",
]

_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")


def parse_xero_date(value: str | None) -> date | None:
    """``/Date(1546214400000+0000)/`` (or ``YYYY-MM-DD…``) → the calendar date Xero means."""
    if not value:
        return None
    match = _MS_DATE.match(value)
    if match:
        moment = datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
        if match.group(2):
            offset = timedelta(hours=int(match.group(3)), minutes=int(match.group(4)))
            moment = moment.astimezone(timezone(offset if match.group(2) == "+" else -offset))
        return moment.date()
    return date.fromisoformat(value[:10])


def _amount(value: Any) -> Decimal | None:
    """A LineAmount as Xero returned it (parsed as Decimal), or None when absent or not a number."""
    try:
        return Decimal(str(value)) if value is not None and not isinstance(value, bool) else None
    except ArithmeticError:
        return None


# --- the hook --------------------------------------------------------------------------------------


class XeroHook(OAuthLedgerHook):
    """Xero for one organisation (``tenant_id``), with tokens from ``token_store``.

    The Airflow connection holds the app: ``host`` is the API base (``https://api.xero.com/api.xro/2.0``
    or a sandbox's), ``login``/``password`` the client id and secret, and extra ``token_url``,
    ``authorize_url``, ``connections_url``, ``scopes``, ``redirect_uri`` (plain or ``extra__xero__``-prefixed).
    """

    conn_name_attr = "xero_conn_id"
    default_conn_name = "xero_default"
    conn_type = "xero"
    hook_name = "Xero"
    platform = "xero"
    reconnect_guidance = RECONNECT

    def __init__(
        self,
        *,
        xero_conn_id: str = default_conn_name,
        token_store: TokenStore | None = None,
        tenant_id: str | None = None,
    ):
        super().__init__(token_store=token_store, tenant_id=tenant_id)
        self.xero_conn_id = xero_conn_id

    # --- connection ---------------------------------------------------------------------------------

    @staticmethod
    def connection_params(conn) -> XeroParams:
        """The Airflow connection as call parameters (pure: no I/O)."""
        extra = connection_extra(conn, "xero")
        host = (conn.host or "").strip() or XERO_API_BASE
        if "://" not in host:
            host = f"{conn.schema if conn.schema in ('http', 'https') else 'https'}://{host}"
        parts = urlsplit(host)
        api_base = host.rstrip("/") if parts.path.strip("/") else f"{host.rstrip('/')}/api.xro/2.0"
        origin = f"{parts.scheme}://{parts.netloc}"
        real = parts.netloc.lower() == "api.xero.com"
        defaults = {
            "token_url": XERO_TOKEN_URL if real else f"{origin}/identity/connect/token",
            "authorize_url": XERO_AUTHORIZE_URL if real else f"{origin}/identity/connect/authorize",
            "connections_url": XERO_CONNECTIONS_URL if real else f"{origin}/connections",
            "revocation_url": XERO_REVOCATION_URL if real else f"{origin}/identity/connect/revocation",
            "journal_url": XERO_JOURNAL_URL if real else f"{origin}/_sandbox/journals/{{id}}",
        }
        return XeroParams(
            api_base=api_base,
            client_id=conn.login or "",
            client_secret=conn.password or "",
            **{key: extra(key, value) for key, value in defaults.items()},
            scopes=" ".join(str(extra("scopes", DEFAULT_SCOPES)).split()),
            redirect_uri=extra("redirect_uri"),
            timeout=float(extra("timeout", 30.0)),
            max_rate_limit_wait=float(extra("max_rate_limit_wait", 60.0)),
            max_attempts=int(extra("max_attempts", 5)),
            backoff=float(extra("backoff", 1.0)),
            minute_reserve=int(extra("minute_reserve", 5)),
        )

    # --- what OAuthLedgerHook asks of a ledger --------------------------------------------------------

    def _refresh(self, latest: TokenSet) -> TokenSet:
        """Xero rotates the refresh token: the answer's new one replaces the old (saved by the caller)."""
        answer = post_token_endpoint(
            self.params, {"grant_type": "refresh_token", "refresh_token": latest.refresh_token}, self.session
        )
        return token_set(answer, tenant_id=latest.tenant_id, now=self._now())

    def _prepare(
        self, method: str, path: str, tokens: TokenSet, params: dict | None, idempotency_key: str | None
    ) -> tuple[str, dict, dict | None]:
        headers = {"Authorization": f"Bearer {tokens.access_token}", "xero-tenant-id": self.tenant_id}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.params.api_base + path, headers, params

    def _retry_after(self, response: requests.Response) -> float | None:
        return float(response.headers.get("Retry-After") or 60)

    def _pace(self, response: requests.Response) -> float:
        """Seconds to wait before the next call: Xero allows 60 calls a minute per tenant and says on every
        answer how many are left (``X-MinLimit-Remaining``); slowing down as that nears 0 spreads a
        backfill's calls over the minute instead of spending a call (and a ``Retry-After``) on a 429.
        Posts to one tenant are serialised (``ledger_limits.tenant_lock``), so the pause holds the next
        post back too."""
        try:
            remaining = int(response.headers.get("X-MinLimit-Remaining", ""))
        except ValueError:
            return 0.0
        return float(max(0, self.params.minute_reserve - remaining))

    def _rate_limit_problem(self, response: requests.Response) -> str:
        return response.headers.get("X-Rate-Limit-Problem") or "Unknown"

    def _check_app(self) -> tuple[bool, str]:
        return check_client_credentials(self.params, session=self.session)

    def _get(self, path: str, params: dict | None = None) -> dict:
        response = self._call("GET", path, params=params)
        if response.status_code != 200:
            raise self._unexpected(response, f"GET {path}")
        return loads_json(response)

    def _unexpected(self, response: requests.Response, what: str) -> LedgerError:
        data = loads_json(response)
        message = data.get("Message") or data.get("Detail") or data.get("Title") or response.reason
        return LedgerValidationError(
            f"Xero answered HTTP {response.status_code} to {what} for tenant {self.tenant_id}: {message}"
        )

    # --- LedgerHook -----------------------------------------------------------------------------------

    def list_accounts(self) -> list[LedgerAccount]:
        return [
            LedgerAccount(
                id=a["AccountID"],
                code=a.get("Code") or None,
                name=a.get("Name", ""),
                type=a.get("Type", ""),
                active=a.get("Status") == "ACTIVE",
                status=a.get("Status", ""),
            )
            for a in self._get("/Accounts").get("Accounts", [])
        ]

    def get_settings(self) -> LedgerSettings:
        org = self._get("/Organisation")["Organisations"][0]
        locks = [
            d
            for d in (
                parse_xero_date(org.get("PeriodLockDate")),
                parse_xero_date(org.get("EndOfYearLockDate")),
            )
            if d is not None
        ]
        return LedgerSettings(
            organisation_name=org.get("Name", ""),
            base_currency=org.get("BaseCurrency", ""),
            lock_date=max(locks) if locks else None,
        )

    def find_journal(self, reference: str) -> PostedJournal | None:
        quoted = reference.replace("\\", "\\\\").replace('"', '\\"')
        found = self._get("/ManualJournals", {"where": f'Narration.StartsWith("{quoted}")'}).get(
            "ManualJournals", []
        )
        candidates = [j for j in found if (j.get("Narration") or "").split(maxsplit=1)[:1] == [reference]]
        if not candidates:
            return None
        posted = [j for j in candidates if j.get("Status") == "POSTED"]
        if len(posted) > 1:
            ids = ", ".join(j["ManualJournalID"] for j in posted)
            raise LedgerConflict(
                f"Xero holds {len(posted)} posted journals with reference {reference}: {ids}",
                guidance="Void all but one of them in Xero, then re-run the period.",
            )
        chosen = posted[0] if posted else candidates[-1]
        full = self._get(f"/ManualJournals/{chosen['ManualJournalID']}")["ManualJournals"][0]
        return self._posted(full, reference)

    def _posted(self, journal: dict, reference: str) -> PostedJournal:
        lines = []
        for line in journal.get("JournalLines") or []:
            amount = to_minor(line.get("LineAmount", 0))
            if amount:
                lines.append(
                    LedgerLine(
                        account_id=line.get("AccountID") or "",
                        account_code=line.get("AccountCode"),
                        side=Side.DEBIT if amount > 0 else Side.CREDIT,
                        amount_minor=abs(amount),
                        description=line.get("Description") or "",
                    )
                )
        return PostedJournal(
            ledger_id=journal["ManualJournalID"],
            reference=reference,
            status=journal.get("Status", ""),
            posted=journal.get("Status") == "POSTED",
            journal_date=parse_xero_date(journal.get("Date")),
            url=self.params.journal_url.format(id=journal["ManualJournalID"]),
            lines=tuple(lines),
        )

    @staticmethod
    def journal_body(request: JournalRequest) -> dict:
        """The ``PUT /ManualJournals`` body: one POSTED NoTax journal, debits positive, credits negative."""
        narration = request.narration.strip()
        if narration.split(maxsplit=1)[:1] != [request.reference]:
            narration = f"{request.reference} {narration}".strip()
        lines = []
        for line in request.lines:
            if line.amount_minor <= 0:
                raise LedgerValidationError(
                    f"journal {request.reference}: line {line.description!r} has a "
                    f"non-positive amount {line.amount_minor}"
                )
            amount = to_decimal(line.amount_minor)
            entry: dict[str, Any] = {"LineAmount": amount if line.side == Side.DEBIT else -amount}
            entry |= (
                {"AccountCode": line.account_code} if line.account_code else {"AccountID": line.account_id}
            )
            entry["Description"] = line.description
            lines.append(entry)
        journal = {
            "Narration": narration,
            "Date": request.journal_date.isoformat(),
            "Status": "POSTED",
            "LineAmountTypes": "NoTax",
            "JournalLines": lines,
        }
        if request.source_url:
            journal["Url"] = request.source_url
        return {"ManualJournals": [journal]}

    def post_journal(self, request: JournalRequest, *, idempotency_key: str | None = None) -> PostedJournal:
        """PUT one journal with ``Idempotency-Key`` = the reference (or ``idempotency_key`` for a deliberate
        re-post after a void), and accept it only as Xero confirms it."""
        key = idempotency_key or request.reference
        if len(key) > 128:
            raise LedgerValidationError(f"idempotency key {key!r} is longer than Xero's 128 characters")
        body = self.journal_body(request)
        response = self._call(
            "PUT", "/ManualJournals", params={"summarizeErrors": "false"}, body=body, idempotency_key=key
        )
        data = loads_json(response)
        if response.status_code == 400:
            elements = data.get("Elements") or []
            messages = [e["Message"] for el in elements for e in el.get("ValidationErrors") or []]
            raise self._refusal(request, messages or [data.get("Message") or "HTTP 400"])
        if response.status_code != 200:
            raise self._unexpected(response, f"PUT /ManualJournals ({request.reference})")
        journal = (data.get("ManualJournals") or [{}])[0]
        self._confirm(request, journal)
        return PostedJournal(
            ledger_id=journal["ManualJournalID"],
            reference=request.reference,
            status="POSTED",
            posted=True,
            journal_date=request.journal_date,
            url=self.params.journal_url.format(id=journal["ManualJournalID"]),
            lines=request.lines,
        )

    def _confirm(self, request: JournalRequest, journal: dict) -> None:
        journal_id = journal.get("ManualJournalID")
        errors = [m.get("Message", "") for m in journal.get("ValidationErrors") or []]
        if errors:
            raise self._refusal(request, errors)
        warnings = [m.get("Message", "") for m in journal.get("Warnings") or []]
        if warnings:
            raise self._refusal(request, warnings, saved_id=journal_id)
        if not journal_id:
            raise LedgerValidationError(
                f"Xero answered journal {request.reference} without a ManualJournalID"
            )
        if journal.get("Status") != "POSTED":
            raise LedgerValidationError(
                f"Xero saved journal {request.reference} ({journal_id}) as {journal.get('Status')}, not POSTED",
                guidance="Open the journal in Xero and post or delete it, then re-run the period.",
            )
        sent = self.journal_body(request)["ManualJournals"][0]["JournalLines"]
        got = journal.get("JournalLines") or []
        problems = [] if len(sent) == len(got) else [f"{len(got)} lines came back for {len(sent)} sent"]
        for number, (want, line, have) in enumerate(zip(sent, request.lines, got, strict=False), start=1):
            if line.account_code and have.get("AccountCode") != line.account_code:
                problems.append(
                    f"line {number}: account {have.get('AccountCode')!r} instead of {line.account_code!r}"
                )
            elif line.account_id and have.get("AccountID") and have["AccountID"] != line.account_id:
                problems.append(
                    f"line {number}: account code {line.account_code} now belongs to account "
                    f"{have['AccountID']}, not the mapped {line.account_id}"
                )
            if _amount(have.get("LineAmount")) != want["LineAmount"]:
                problems.append(
                    f"line {number}: amount {have.get('LineAmount')} instead of {want['LineAmount']}"
                )
        if problems:
            error = LedgerValidationError(
                f"Xero posted journal {request.reference} ({journal_id}) differently from the request: "
                + "; ".join(problems),
                guidance=f"Void journal {journal_id} in Xero, check the company's account mapping, then re-run the period.",
            )
            error.ledger_id = journal_id
            raise error

    def _refusal(
        self, request: JournalRequest, messages: list[str], saved_id: str | None = None
    ) -> LedgerError:
        """Xero's messages as the exception a finance user can act on."""
        text = "; ".join(messages)
        ref, day = request.reference, request.journal_date.isoformat()
        saved = (f"Xero saved the journal anyway ({saved_id}): void it in Xero first. ") if saved_id else ""
        codes = sorted(set(re.findall(r"Account code '([^']*)'", text)))
        labels = ", ".join(dict.fromkeys(line_label(x) for x in request.lines if x.account_code in codes))
        target = f"the category {labels}" if labels else "the category"
        lock = _lock_date_in(text)
        if any("lock date" in m for m in messages):
            locked = (
                f"the period is locked in Xero before {lock.isoformat()}"
                if lock
                else "the period is locked in Xero"
            )
            error: LedgerError = LedgerLockedPeriod(
                f"Xero refused journal {ref} dated {day}: {locked} ({text})",
                guidance=f"{saved}{day} is on or before the lock date in Xero. Ask the Xero adviser to move the "
                "lock date (Settings > Advanced > Financial settings), or post the period by hand.",
            )
        elif any("archived" in m for m in messages):
            error = LedgerAccountError(
                f"Xero refused journal {ref}: {text}",
                guidance=f"{saved}Account {', '.join(codes)} is archived in Xero. Restore it in Xero's chart of "
                f"accounts, or map {target} to an active account, then re-run the period.",
            )
        elif codes or any("recognised account" in m or "AccountID" in m for m in messages):
            error = LedgerAccountError(
                f"Xero did not recognise an account of journal {ref}: {text}",
                guidance=f"{saved}Account {', '.join(codes) or '(by id)'} does not exist in this Xero organisation. "
                f"Map {labels or 'the category'} to an active account of the chart, then re-run the period.",
            )
        elif any("must equal total credits" in m for m in messages):
            error = LedgerValidationError(
                f"Xero refused journal {ref} as unbalanced: {text}",
                guidance=f"{saved}The journal's debits and credits differ, which the project's own checks should "
                "have caught: send the run's log to the data team.",
            )
        else:
            error = LedgerValidationError(
                f"Xero refused journal {ref}: {text}",
                guidance=f"{saved}Read Xero's message, correct the mapping or the organisation's settings, "
                "then re-run the period.",
            )
        error.ledger_messages, error.ledger_id = messages, saved_id
        return error

    def void_journal(self, reference: str) -> PostedJournal | None:
        """Void the journal carrying ``reference``: ``POST /ManualJournals/{id}`` with Status VOIDED.

        Xero keeps a voided journal, lines and all, out of its reports; a draft cannot be voided and is
        DELETED instead. A journal dated in a locked period cannot be voided (``LedgerLockedPeriod``).
        Voiding again returns the voided journal unchanged.
        """
        found = self.find_journal(reference)
        if found is None or found.status in ("VOIDED", "DELETED"):
            return found
        status = "VOIDED" if found.status == "POSTED" else "DELETED"
        response = self._call(
            "POST",
            f"/ManualJournals/{found.ledger_id}",
            params={"summarizeErrors": "false"},
            body={"ManualJournals": [{"Status": status}]},
            idempotency_key=f"{reference}:void:{found.ledger_id}",
        )
        data = loads_json(response)
        request = JournalRequest(reference, found.journal_date or date.min, "", found.lines)
        if response.status_code == 400:
            elements = data.get("Elements") or []
            messages = [e["Message"] for el in elements for e in el.get("ValidationErrors") or []]
            raise self._refusal(request, messages or [data.get("Message") or "HTTP 400"])
        if response.status_code != 200:
            raise self._unexpected(response, f"POST /ManualJournals/{found.ledger_id} ({reference})")
        journal = (data.get("ManualJournals") or [{}])[0]
        errors = [m.get("Message", "") for m in journal.get("ValidationErrors") or []]
        if errors:
            raise self._refusal(request, errors)
        if journal.get("Status") != status:
            raise LedgerValidationError(
                f"Xero left journal {reference} ({found.ledger_id}) {journal.get('Status')}, not {status}"
            )
        self.log.info("Voided Xero journal %s (%s) for tenant %s", reference, found.ledger_id, self.tenant_id)
        return replace(found, status=status, posted=False)


def _lock_date_in(text: str) -> date | None:
    """The lock date Xero names ("currently set at 31-Oct-2026"), if it does."""
    match = re.search(r"currently set at (\d{1,2}-[A-Za-z]{3}-\d{4})", text)
    try:
        return datetime.strptime(match.group(1), "%d-%b-%Y").date() if match else None
    except ValueError:
        return None
