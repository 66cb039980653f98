"""Zoho Books (API v3) behind ``LedgerHook``, on the shared ``OAuthLedgerHook``.

What is Zoho's own here (LEDGER_APIS.md §2); the token lock, the one forced refresh on a 401, the
retry predicate and the logging rules are ``OAuthLedgerHook``'s (§5):

- Data centres: the grant's ``accounts_server`` and ``api_domain`` (``TokenSet.extra``, stored per
  grant) are used for every refresh and call; ``Authorization: Zoho-oauthtoken …``;
  ``organization_id`` (the tenant) on every call.
- Tokens: one-hour access tokens, shared through the token store so refreshes stay under Zoho's 10
  per 10 minutes; the refresh token never rotates, so a refresh never stores a "new" one; an
  ``invalid_code`` answer (even with HTTP 200) is a dead grant: ``LedgerAuthError`` and the
  connection needs a person.
- Lines are ``debit_or_credit`` with a positive ``amount`` made from ``Decimal``.
- Idempotency: Zoho has none, so ``post_journal`` looks the ``reference_number`` up before creating,
  and again, before any retry, after an attempt whose answer was lost. A journal counts as posted only
  as Zoho returns it: ``code`` 0, status ``published``, the same accounts, sides and amounts.
- Rate limits: a 429 without ``Retry-After`` backs off exponentially with jitter from
  ``rate_limit_backoff``; the daily limit (shared by every integration of the organisation) raises
  ``LedgerRateLimited`` at once.
- Refusals: Zoho's error codes and texts for a locked period, an inactive account or an unbalanced
  journal are undocumented, so a refused post is diagnosed from facts (the organisation, the lock
  date, the chart), and raised as the same classes with the same guidance as Xero's.
- Void: Zoho Books has no void for manual journals. ``void_journal`` posts a reversing journal (same
  date, same accounts, sides swapped, reference ``<reference>-VOID``, notes naming the original), so
  nothing is deleted from the books and the scopes stay CREATE and READ; the original then counts as
  not posted.

The connect flow's helpers (``authorization_url``, ``exchange_code``, ``token_set``,
``list_organizations``, ``revoke``) live in ``zoho_identity`` and are importable from here too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import requests

from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerConflict,
    LedgerError,
    LedgerLockedPeriod,
    LedgerRateLimited,
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
from mamo_revenue.hooks.oauth import expires_at
from mamo_revenue.hooks.oauth_ledger import GrantRejected, OAuthLedgerHook, TransientError, loads_json
from mamo_revenue.hooks.tokens import TokenSet, TokenStore
from mamo_revenue.hooks.zoho_identity import (
    BOOKS_PATH,
    RECONNECT,
    ZohoParams,
    authorization_url,
    check_client_credentials,
    exchange_code,
    journal_link,
    list_organizations,
    post_token_endpoint,
    revoke,
    token_set,
)
from mamo_revenue.hooks.zoho_identity import connection_params as _connection_params
from mamo_revenue.money import to_decimal, to_minor

__all__ = [
    "VOID_SUFFIX",
    "ZohoBooksHook",
    "ZohoParams",
    "authorization_url",
    "exchange_code",
    "list_organizations",
    "revoke",
    "token_set",
]

#: The reference of a reversing journal: the original's reference plus this (no Mamo reference ends so).
VOID_SUFFIX = "-VOID"
_REVERSES = re.compile(r"Reverses journal (\d+)")
_DAILY = ("per day", "daily", "24 hours", "tomorrow")
_LOCK_MODULES = {"accountant", "all", ""}  # manual journals belong to the Accountant module


class ZohoBooksHook(OAuthLedgerHook):
    """Zoho Books for one organisation (``tenant_id`` = ``organization_id``), tokens from ``token_store``.

    The Airflow connection holds the app: ``login``/``password`` the client id and secret, and extra
    ``accounts_url`` (where consent starts, default ``https://accounts.zoho.com``), ``redirect_uri``,
    ``scopes`` (comma-separated), ``publish`` (``published`` or ``draft_then_publish``), and the
    tuning knobs ``timeout``, ``max_attempts``, ``backoff``, ``rate_limit_backoff``,
    ``max_rate_limit_wait``, ``per_page``. The API domain is not a connection field: it is the grant's.
    """

    conn_name_attr = "zoho_books_conn_id"
    default_conn_name = "zoho_books_default"
    conn_type = "zoho_books"
    hook_name = "Zoho Books"
    platform = "zoho_books"
    tenant_label = "organisation"
    reconnect_guidance = RECONNECT

    def __init__(
        self,
        *,
        zoho_books_conn_id: str = default_conn_name,
        token_store: TokenStore | None = None,
        tenant_id: str | None = None,
    ):
        super().__init__(token_store=token_store, tenant_id=tenant_id)
        self.zoho_books_conn_id = zoho_books_conn_id

    @staticmethod
    def connection_params(conn) -> ZohoParams:
        """The Airflow connection as call parameters (pure: no I/O)."""
        return _connection_params(conn)

    # --- what OAuthLedgerHook asks of a ledger --------------------------------------------------------

    def _refresh(self, latest: TokenSet) -> TokenSet:
        """A new access token at the grant's accounts server; the refresh token and the grant's data
        centre are kept as they are (Zoho's refresh tokens never rotate)."""
        server = latest.extra.get("accounts_server")
        if not server or not latest.extra.get("api_domain"):
            raise GrantRejected("no data centre saved with the grant")
        answer = post_token_endpoint(
            self.params,
            server,
            {"grant_type": "refresh_token", "refresh_token": latest.refresh_token},
            self.session,
        )
        return TokenSet(
            access_token=answer["access_token"],
            refresh_token=latest.refresh_token,
            access_expires_at=expires_at(answer.get("expires_in", 3600), now=self._now()),
            tenant_id=latest.tenant_id,
            extra=latest.extra,
        )

    def _prepare(
        self, method: str, path: str, tokens: TokenSet, params: dict | None, idempotency_key: str | None
    ) -> tuple[str, dict, dict | None]:
        api_domain = tokens.extra.get("api_domain")
        if not api_domain:
            raise self._needs_reconnect("the saved grant does not say its data centre (no api_domain)")
        query = {"organization_id": self.tenant_id} | (params or {})
        return (
            f"{api_domain.rstrip('/')}{BOOKS_PATH}{path}",
            {"Authorization": f"Zoho-oauthtoken {tokens.access_token}"},
            query,
        )

    def _rate_limited(self, response: requests.Response) -> TransientError:
        message = self._error_detail(response)
        if any(word in message.lower() for word in _DAILY):
            raise LedgerRateLimited(
                f"Zoho Books' daily API limit is used up for organisation {self.tenant_id}: {message}",
                retry_after=self._retry_after(response),
                problem="Daily",
            ).with_guidance(
                "Zoho Books' daily API limit of this organisation (shared with every integration it uses) is "
                "used up; the period is posted when the task runs again after the limit resets. If it recurs, "
                "ask Zoho to raise the organisation's daily limit."
            )
        return super()._rate_limited(response)

    def _rate_limit_problem(self, response: requests.Response) -> str:
        return "Minute"

    def _check_app(self) -> tuple[bool, str]:
        return check_client_credentials(self.params, session=self.session)

    # --- reading ------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict | None = None) -> dict:
        response = self._call("GET", path, params=params)
        data = loads_json(response)
        if response.status_code != 200 or not isinstance(data, dict) or data.get("code") != 0:
            raise self._unexpected(response, f"GET {path}")
        return data

    def _unexpected(self, response: requests.Response, what: str) -> LedgerError:
        data = loads_json(response)
        data = data if isinstance(data, dict) else {}
        if response.status_code in (400, 404) and self._organisation() is None:
            return self._organisation_gone()
        return LedgerValidationError(
            f"Zoho Books answered HTTP {response.status_code} (code {data.get('code')}) to {what} for "
            f"organisation {self.tenant_id}: {data.get('message') or response.reason}"
        )

    def _organisation(self) -> dict | None:
        """This organisation as ``GET /organizations`` lists it, or None when the user no longer reaches it."""
        response = self._call("GET", "/organizations")
        data = loads_json(response)
        if response.status_code != 200 or data.get("code") != 0:
            raise LedgerValidationError(
                f"Zoho Books answered HTTP {response.status_code} listing organisations: {data.get('message')}"
            )
        return next(
            (
                o
                for o in data.get("organizations") or []
                if str(o.get("organization_id")) == str(self.tenant_id)
            ),
            None,
        )

    def _organisation_gone(self) -> LedgerError:
        return self._needs_reconnect(
            "the organisation was deleted or is no longer shared with the connected Zoho user"
        ).with_guidance(
            f"Zoho Books organisation {self.tenant_id} is gone for the connected user. Reconnect Zoho Books for "
            "this company and choose the organisation to post to."
        )

    def _pages(self, path: str, key: str, params: dict) -> list[dict]:
        """Every item of a paged list, following ``page_context.has_more_page``."""
        items, page = [], 1
        while True:
            data = self._get(path, params | {"page": page, "per_page": self.params.per_page})
            items += data.get(key) or []
            if not (data.get("page_context") or {}).get("has_more_page"):
                return items
            page += 1
            if page > 10_000:
                raise LedgerValidationError(f"Zoho Books' paging of {path} does not end")

    def list_accounts(self) -> list[LedgerAccount]:
        """The whole chart (``filter_by=AccountType.All``), inactive accounts marked ``active`` False."""
        seen: dict[str, LedgerAccount] = {}
        for a in self._pages("/chartofaccounts", "chartofaccounts", {"filter_by": "AccountType.All"}):
            active = bool(a.get("is_active"))
            seen[str(a["account_id"])] = LedgerAccount(
                id=str(a["account_id"]),
                code=a.get("account_code") or None,
                name=a.get("account_name", ""),
                type=a.get("account_type", ""),
                active=active,
                status="active" if active else "inactive",
            )
        return list(seen.values())

    def get_settings(self) -> LedgerSettings:
        org = self._organisation()
        if org is None:
            raise self._organisation_gone()
        return LedgerSettings(
            organisation_name=org.get("name", ""),
            base_currency=org.get("currency_code", ""),
            lock_date=self._lock_date(),
        )

    def _lock_date(self) -> date | None:
        """The binding transaction lock date of manual journals (Accountant module), from
        ``GET /transactionlocks``; None when Zoho answers none (locking is plan-dependent): a locked
        period is then still refused, and diagnosed, when posting."""
        response = self._call("GET", "/transactionlocks")
        data = loads_json(response)
        if response.status_code != 200 or data.get("code") != 0:
            self.log.warning(
                "Zoho Books listed no transaction locks for organisation %s (HTTP %s, code %s)",
                self.tenant_id,
                response.status_code,
                data.get("code"),
            )
            return None
        dates = []
        for lock in data.get("transaction_locks") or []:
            module = str(lock.get("transaction_lock_module") or "").lower()
            if module in _LOCK_MODULES and lock.get("transaction_lock_status", "enabled") != "disabled":
                try:
                    dates.append(date.fromisoformat(str(lock.get("transaction_lock_date"))[:10]))
                except ValueError:
                    continue
        return max(dates) if dates else None

    # --- finding --------------------------------------------------------------------------------------

    def _candidates(self, reference: str) -> tuple[list[dict], list[dict]]:
        """Journals carrying ``reference`` and reversals of them, oldest first (one paged list call)."""
        found = self._pages("/journals", "journals", {"reference_number_startswith": reference})
        found.sort(key=lambda j: int(j.get("entry_number") or 0))
        originals = [j for j in found if j.get("reference_number") == reference]
        reversals = [j for j in found if j.get("reference_number") == reference + VOID_SUFFIX]
        return originals, reversals

    @staticmethod
    def _reversed_ids(reversals: list[dict]) -> set[str]:
        return {
            m.group(1)
            for r in reversals
            if r.get("status") == "published"
            for m in [_REVERSES.search(r.get("notes") or "")]
            if m
        }

    def _journal(self, journal_id: str) -> dict:
        return self._get(f"/journals/{journal_id}").get("journal") or {}

    def find_journal(self, reference: str) -> PostedJournal | None:
        """The live published journal with this reference; else the latest reversed one (status
        ``reversed``) or draft, ``posted`` False; None when there is none."""
        originals, reversals = self._candidates(reference)
        reversed_ids = self._reversed_ids(reversals)
        live = [
            j
            for j in originals
            if j.get("status") == "published" and str(j["journal_id"]) not in reversed_ids
        ]
        if len(live) > 1:
            ids = ", ".join(str(j["journal_id"]) for j in live)
            raise LedgerConflict(
                f"Zoho Books holds {len(live)} published journals with reference {reference}: {ids}",
                guidance="Reverse or delete all but one of them in Zoho Books, then re-run the period.",
            )
        if live:
            return self._posted(self._journal(str(live[0]["journal_id"])), reference)
        done = [j for j in originals if str(j["journal_id"]) in reversed_ids]
        drafts = [j for j in originals if j.get("status") != "published"]
        chosen = (done or drafts or [None])[-1]
        if chosen is None:
            return None
        journal = self._posted(self._journal(str(chosen["journal_id"])), reference)
        return replace(journal, status="reversed", posted=False) if done else journal

    def _posted(self, journal: dict, reference: str) -> PostedJournal:
        lines = tuple(
            LedgerLine(
                account_id=str(line.get("account_id") or ""),
                account_code=line.get("account_code") or None,
                side=Side(line.get("debit_or_credit")),
                amount_minor=to_minor(line.get("amount", 0)),
                description=line.get("description") or "",
            )
            for line in journal.get("line_items") or []
        )
        status = journal.get("status", "")
        return PostedJournal(
            ledger_id=str(journal["journal_id"]),
            reference=reference,
            status=status,
            posted=status == "published",
            journal_date=date.fromisoformat(journal["journal_date"]) if journal.get("journal_date") else None,
            url=self._link(str(journal["journal_id"])),
            lines=lines,
        )

    def _link(self, journal_id: str) -> str:
        return journal_link(
            self.params, self._store().current().extra.get("api_domain", ""), self.tenant_id, journal_id
        )

    # --- posting --------------------------------------------------------------------------------------

    @staticmethod
    def journal_body(request: JournalRequest, *, status: str = "published", notes: str | None = None) -> dict:
        """The ``POST /journals`` body: base currency, ``journal_type`` both, positive amounts with
        ``debit_or_credit``, no tax; ``reference_number`` the reference."""
        lines = []
        for line in request.lines:
            if line.amount_minor <= 0:
                raise LedgerValidationError(
                    f"journal {request.reference}: line {line.description!r} has a non-positive amount {line.amount_minor}"
                )
            if not line.account_id:
                raise LedgerAccountError(
                    f"journal {request.reference}: line {line.description!r} names no Zoho Books account id",
                    guidance=f"Map {line_label(line)} to an active account of Zoho Books' chart, then re-run the period.",
                )
            lines.append(
                {
                    "account_id": line.account_id,
                    "debit_or_credit": line.side.value,
                    "amount": to_decimal(line.amount_minor),
                    "description": line.description,
                }
            )
        body: dict[str, Any] = {
            "journal_date": request.journal_date.isoformat(),
            "reference_number": request.reference,
            "notes": notes if notes is not None else (request.narration or request.reference),
            "journal_type": "both",
            "status": status,
            "line_items": lines,
        }
        return body

    def post_journal(self, request: JournalRequest, *, idempotency_key: str | None = None) -> PostedJournal:
        """Post once, published (or as a draft, then published: the connection's ``publish``).

        Zoho has no idempotency key, so ``idempotency_key`` only says this is a deliberate re-post; what
        makes a retry safe is the look-up by ``reference_number`` before creating and after a lost
        answer. A journal already published under the reference is returned when its lines equal the
        request's (``LedgerConflict`` when not); a draft of ours is published; a reversed one is ignored.
        """
        existing = self._existing(request)
        if existing is not None:
            return existing
        return self._create(request, self.journal_body(request, status=self._create_status()))

    def _create_status(self) -> str:
        return "published" if self.params.publish == "published" else "draft"

    def _existing(self, request: JournalRequest) -> PostedJournal | None:
        """The journal already in Zoho Books for this request, settled (a draft of ours published);
        None when there is none to reuse (reversed ones do not count)."""
        originals, reversals = self._candidates(request.reference)
        reversed_ids = self._reversed_ids(reversals)
        kept = [j for j in originals if str(j["journal_id"]) not in reversed_ids]
        live = [j for j in kept if j.get("status") == "published"]
        if len(live) > 1:
            ids = ", ".join(str(j["journal_id"]) for j in live)
            raise LedgerConflict(
                f"Zoho Books holds {len(live)} published journals with reference {request.reference}: {ids}",
                guidance="Reverse or delete all but one of them in Zoho Books, then re-run the period.",
            )
        chosen = (live or kept or [None])[-1]
        if chosen is None:
            return None
        journal = self._journal(str(chosen["journal_id"]))
        if _shape(journal.get("line_items") or []) != _request_shape(request.lines):
            what = "published" if chosen.get("status") == "published" else "a draft"
            raise LedgerConflict(
                f"Zoho Books journal {chosen['journal_id']} ({what}) carries reference {request.reference} "
                "but its lines differ from the journal to post",
                guidance="Reverse (or, if a draft, delete) that journal in Zoho Books, then re-run the period.",
            )
        self.log.info(
            "Zoho Books journal %s (%s) already carries %s for organisation %s",
            chosen["journal_id"],
            chosen.get("status"),
            request.reference,
            self.tenant_id,
        )
        return self._settle(request, journal)

    def _create(self, request: JournalRequest, body: dict) -> PostedJournal:
        result = self._call("POST", "/journals", body=body, landed=lambda: self._existing(request))
        if isinstance(result, PostedJournal):  # an earlier attempt landed; its answer was lost
            return result
        data = loads_json(result)
        if result.status_code not in (200, 201) or not isinstance(data, dict) or data.get("code") != 0:
            raise self._refusal(request, result)
        return self._settle(request, data.get("journal") or {})

    def _settle(self, request: JournalRequest, journal: dict) -> PostedJournal:
        """Publish a draft of ours, then accept the journal only as Zoho shows it."""
        journal_id = str(journal.get("journal_id") or "")
        if not journal_id:
            raise LedgerValidationError(
                f"Zoho Books answered journal {request.reference} without a journal_id"
            )
        if journal.get("status") != "published":
            self._publish(request, journal_id)
            journal = self._journal(journal_id)
        self._confirm(request, journal)
        return PostedJournal(
            ledger_id=journal_id,
            reference=request.reference,
            status="published",
            posted=True,
            journal_date=request.journal_date,
            url=self._link(journal_id),
            lines=request.lines,
        )

    def _publish(self, request: JournalRequest, journal_id: str) -> None:
        path = f"/journals/{journal_id}/status/publish"
        result = self._call(
            "POST",
            path,
            landed=lambda: True if self._journal(journal_id).get("status") == "published" else None,
        )
        if result is True:
            return
        data = loads_json(result)
        if result.status_code != 200 or data.get("code") != 0:
            raise self._refusal(request, result, saved_id=journal_id)

    def _confirm(self, request: JournalRequest, journal: dict) -> None:
        journal_id = journal.get("journal_id")
        problems = []
        if journal.get("status") != "published":
            problems.append(f"status {journal.get('status')!r}, not published")
        if journal.get("journal_date") != request.journal_date.isoformat():
            problems.append(f"dated {journal.get('journal_date')}, not {request.journal_date.isoformat()}")
        got, sent = _shape(journal.get("line_items") or []), _request_shape(request.lines)
        if got != sent:
            missing = sorted((sent - got).elements())
            extra = sorted((got - sent).elements())
            problems.append(f"lines differ (missing {missing}, unexpected {extra})")
        if problems:
            error = LedgerValidationError(
                f"Zoho Books holds journal {request.reference} ({journal_id}) differently from the request: "
                + "; ".join(problems),
                guidance=f"Reverse or delete journal {journal_id} in Zoho Books, check the company's account "
                "mapping, then re-run the period.",
            )
            error.ledger_id = journal_id
            raise error

    def _refusal(
        self, request: JournalRequest, response: requests.Response, saved_id: str | None = None
    ) -> LedgerError:
        """Zoho's refusal as the exception a finance user can act on, diagnosed from facts: Zoho's own
        codes and texts for these cases are undocumented (LEDGER_APIS.md §2.6)."""
        data = loads_json(response)
        data = data if isinstance(data, dict) else {}
        message = str(data.get("message") or f"HTTP {response.status_code}")
        ref, day = request.reference, request.journal_date.isoformat()
        saved = (
            f"Zoho Books saved journal {saved_id} as a draft: delete it in Zoho Books first. "
            if saved_id
            else ""
        )
        if response.status_code not in (400, 404, 405, 409, 422):
            error: LedgerError = LedgerValidationError(
                f"Zoho Books answered HTTP {response.status_code} to journal {ref}: {message}"
            )
        elif self._organisation() is None:
            error = self._organisation_gone()
        elif (lock := self._lock_date()) is not None and request.journal_date <= lock:
            error = LedgerLockedPeriod(
                f"Zoho Books refused journal {ref} dated {day}: the period is locked in Zoho Books before "
                f"{lock.isoformat()} (nothing dated on or before {lock.isoformat()} may change) ({message})",
                guidance=f"{saved}{day} is on or before the transaction lock date {lock.isoformat()} in Zoho Books. "
                "Ask the Zoho Books admin to move the lock date (Settings > Transaction Locking, Accountant "
                "module), or post the period by hand.",
            )
        elif bad := self._unusable_lines(request.lines):
            names = "; ".join(f"{line.account_code or line.account_id} ({state})" for line, state in bad)
            labels = ", ".join(dict.fromkeys(line_label(line) for line, _ in bad))
            error = LedgerAccountError(
                f"Zoho Books refused journal {ref}: account {names} ({message})",
                guidance=f"{saved}Map {labels} to an active account in Zoho Books (or mark the account active "
                "again in Zoho Books' chart of accounts), then re-run the period.",
            )
        elif _debits(request.lines) != _credits(request.lines):
            error = LedgerValidationError(
                f"Zoho Books refused journal {ref} as unbalanced: {message}",
                guidance=f"{saved}The journal's debits and credits differ, which the project's own checks should "
                "have caught: send the run's log to the data team.",
            )
        else:
            error = LedgerValidationError(
                f"Zoho Books refused journal {ref}: {message} (code {data.get('code')})",
                guidance=f"{saved}Read Zoho Books' message, correct the mapping or the organisation's settings, "
                "then re-run the period.",
            )
        error.ledger_messages, error.ledger_id, error.ledger_code = [message], saved_id, data.get("code")
        return error

    def _unusable_lines(self, lines: tuple[LedgerLine, ...]) -> list[tuple[LedgerLine, str]]:
        chart = {account.id: account for account in self.list_accounts()}
        bad = []
        for line in lines:
            account = chart.get(line.account_id)
            if account is None:
                bad.append((line, "not in the chart of accounts: deleted"))
            elif not account.active:
                bad.append((line, f"{account.name}, inactive"))
        return bad

    # --- voiding ----------------------------------------------------------------------------------------

    def void_journal(self, reference: str) -> PostedJournal | None:
        """Reverse the journal carrying ``reference``: Zoho Books cannot void a manual journal, and deleting
        one would erase it from the books, so a reversing journal is posted (same date, same accounts and
        amounts, sides swapped; reference ``<reference>-VOID``; notes ``Reverses journal <id>``). The
        original is then ``reversed`` and not posted. A locked period refuses the reversal
        (``LedgerLockedPeriod``); voiding again changes nothing."""
        found = self.find_journal(reference)
        if found is None or not found.posted:
            return found
        swapped = tuple(
            replace(line, side=Side.CREDIT if line.side == Side.DEBIT else Side.DEBIT) for line in found.lines
        )
        reversal = JournalRequest(
            reference=reference + VOID_SUFFIX,
            journal_date=found.journal_date,
            narration=f"Reverses {reference}",
            lines=swapped,
        )
        notes = f"Reverses journal {found.ledger_id} ({reference}); voided by Mamo revenue accounting"
        pending = self._pending_reversal(reference, found.ledger_id)
        if pending is not None:
            self._settle(reversal, pending)
        else:
            self._create_reversal(
                reversal,
                found.ledger_id,
                self.journal_body(reversal, status=self._create_status(), notes=notes),
            )
        self.log.info(
            "Reversed Zoho Books journal %s (%s) for organisation %s",
            reference,
            found.ledger_id,
            self.tenant_id,
        )
        return replace(found, status="reversed", posted=False)

    def _pending_reversal(self, reference: str, journal_id: str) -> dict | None:
        """A reversal of ``journal_id`` already in Zoho Books (an earlier, interrupted void), in full."""
        _, reversals = self._candidates(reference)
        for item in reversals:
            named = _REVERSES.search(item.get("notes") or "")
            if named and named.group(1) == journal_id:
                return self._journal(str(item["journal_id"]))
        return None

    def _create_reversal(self, reversal: JournalRequest, journal_id: str, body: dict) -> None:
        original = reversal.reference[: -len(VOID_SUFFIX)]

        def landed():
            pending = self._pending_reversal(original, journal_id)
            return self._settle(reversal, pending) if pending is not None else None

        result = self._call("POST", "/journals", body=body, landed=landed)
        if isinstance(result, PostedJournal):
            return
        data = loads_json(result)
        if result.status_code not in (200, 201) or not isinstance(data, dict) or data.get("code") != 0:
            raise self._refusal(reversal, result)
        self._settle(reversal, data.get("journal") or {})


def _shape(line_items: list[dict]) -> Counter:
    """Zoho's lines as a multiset of (account id, side, amount) — Zoho may order lines its own way."""
    return Counter(
        (
            str(item.get("account_id")),
            str(item.get("debit_or_credit")),
            Decimal(str(item.get("amount", 0))).quantize(Decimal("0.01")),
        )
        for item in line_items
    )


def _request_shape(lines: tuple[LedgerLine, ...]) -> Counter:
    return Counter((line.account_id, line.side.value, to_decimal(line.amount_minor)) for line in lines)


def _debits(lines: tuple[LedgerLine, ...]) -> int:
    return sum(line.amount_minor for line in lines if line.side == Side.DEBIT)


def _credits(lines: tuple[LedgerLine, ...]) -> int:
    return sum(line.amount_minor for line in lines if line.side == Side.CREDIT)
