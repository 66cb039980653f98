"""``ZohoBooksHook`` against the Zoho Books sandbox over real sockets; the Airflow connection comes from
``AIRFLOW_CONN_ZOHO_TEST`` (JSON), as a deployment would give it, and the tokens live in the product's
``DbTokenStore`` on PostgreSQL (``make_store`` in ``conftest.py``)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from airflow.sdk import Connection
from token_stores import expired

from mamo_revenue.db.companies import get_ledger_connection
from mamo_revenue.db.session import session_scope
from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerAuthError,
    LedgerConflict,
    LedgerError,
    LedgerLockedPeriod,
    LedgerRateLimited,
    LedgerValidationError,
)
from mamo_revenue.hooks import zoho_identity
from mamo_revenue.hooks.ledger import JournalRequest, LedgerLine, Side
from mamo_revenue.hooks.oauth import expires_at
from mamo_revenue.hooks.oauth_ledger import dumps_json
from mamo_revenue.hooks.registry import ledger_hook_class
from mamo_revenue.hooks.tokens import TokenSet
from mamo_revenue.hooks.zoho_books import VOID_SUFFIX, ZohoBooksHook
from mamo_sandboxes import zoho_data as data
from mamo_sandboxes.zoho import create_app
from mamo_sandboxes.zoho_schema import journal_problems

SANDBOX_APP = create_app  # what the ``server`` fixture (conftest.py) serves
ORG = data.DEMO_ORGANIZATION_ID
REFERENCE = "MAMO-acme-20261120"
CONN_ID = "zoho_test"


# --- fixtures ---------------------------------------------------------------------------------------


class Sandbox:
    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, body=None, expect: int = 200):
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        assert response.status_code == expect, response.text
        return response.json() if response.content else {}

    def settings(self, **changes) -> None:
        self.admin("PATCH", "/settings", changes)

    def fault(self, **fault) -> None:
        self.admin("POST", "/faults", fault, 201)

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/clock", {"advance_seconds": seconds})

    def lock(self, day: str | None, module: str = "accountant") -> None:
        self.admin("PUT", f"/organisations/{ORG}/lock", {"module": module, "date": day})

    def account(self, code: str, **changes) -> None:
        self.admin("PATCH", f"/organisations/{ORG}/accounts/{code}", changes)

    def journals(self) -> list[dict]:
        return self.admin("GET", f"/organisations/{ORG}/journals")["journals"]

    def log(self, contains: str, method: str | None = None) -> list[dict]:
        entries = self.admin("GET", f"/requests?path_contains={contains}")["requests"]
        return [e for e in entries if method is None or e["method"] == method]

    def refreshes(self) -> list[dict]:
        return [r for r in self.log("/oauth/v2/token") if r["grant_type"] == "refresh_token"]


def connection(url: str, **extra) -> dict:
    return {
        "conn_type": "zoho_books",
        "login": data.DEFAULT_CLIENT_ID,
        "password": data.DEFAULT_CLIENT_SECRET,
        "extra": {
            "accounts_url": f"{url}/us/accounts",
            "redirect_uri": data.DEFAULT_REDIRECT_URIS[0],
            "backoff": 0.01,
            "rate_limit_backoff": 0.01,
            "timeout": 2,
            "max_rate_limit_wait": 5,
            "max_attempts": 4,
        }
        | extra,
    }


@pytest.fixture
def sandbox(server, monkeypatch) -> Sandbox:
    box = Sandbox(server.url)
    box.admin("POST", "/reset")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection(server.url)))
    return box


@pytest.fixture
def grant(sandbox) -> dict:
    return sandbox.admin("POST", "/grants", {}, 201)


def tokens_of(grant: dict, *, organization_id: str = ORG) -> TokenSet:
    return TokenSet(
        grant["access_token"],
        grant["refresh_token"],
        expires_at(grant["expires_in"]),
        organization_id,
        extra=zoho_identity.grant_extra(grant["api_domain"], grant["accounts_server"]),
    )


@pytest.fixture
def store(grant, make_store):
    return make_store(tokens_of(grant), platform="zoho_books")


@pytest.fixture
def hook(store) -> ZohoBooksHook:
    return ZohoBooksHook(zoho_books_conn_id=CONN_ID, token_store=store, tenant_id=ORG)


def line(code: str, side: Side, minor: int, description: str) -> LedgerLine:
    return LedgerLine(data.account_id(ORG, code), code, side, minor, description)


def worked_example(
    *, reference: str = REFERENCE, day: date = date(2026, 11, 20), lines=None
) -> JournalRequest:
    """The 2026-11-20 journal of ACCOUNTING.md's worked example (codes as LEDGER_APIS.md §1.5)."""
    return JournalRequest(
        reference=reference,
        journal_date=day,
        narration=f"{reference} Mamo revenue {day.isoformat()}",
        lines=tuple(
            lines
            or (
                line("1215", Side.DEBIT, 18491, "Mamo clearing 2026-11-20"),
                line("6110", Side.DEBIT, 864, "Processing fees 2026-11-20"),
                line("2200", Side.DEBIT, 43, "VAT recoverable on fees 2026-11-20"),
                line("4000", Side.CREDIT, 18474, "Sales 2026-11-20"),
                line("2200", Side.CREDIT, 924, "VAT payable on sales 2026-11-20"),
            )
        ),
    )


WORKED_LINES = [
    ("1215", "debit", "184.91"),
    ("6110", "debit", "8.64"),
    ("2200", "debit", "0.43"),
    ("4000", "credit", "184.74"),
    ("2200", "credit", "9.24"),
]


def lines_of(journal: dict) -> list[tuple[str, str, str]]:
    return [(x["account_code"], x["debit_or_credit"], f"{x['amount']:.2f}") for x in journal["line_items"]]


# --- connection → parameters (pure), registration -------------------------------------------------------


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        pytest.param(
            Connection(conn_id="z", conn_type="zoho_books", login="ID", password="SECRET"),
            {
                "accounts_url": "https://accounts.zoho.com",
                "scopes": "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,ZohoBooks.settings.READ",
                "publish": "published",
                "rate_limit_backoff": 60.0,
            },
            id="defaults",
        ),
        pytest.param(
            Connection(
                conn_id="z",
                conn_type="zoho_books",
                login="ID",
                password="SECRET",
                extra=json.dumps(
                    {
                        "extra__zoho_books__accounts_url": "accounts.zoho.eu",
                        "scopes": "ZohoBooks.accountants.CREATE, ZohoBooks.settings.READ",
                        "publish": "draft_then_publish",
                        "redirect_uri": "https://airflow.example/cb",
                        "timeout": "12",
                    }
                ),
            ),
            {
                "accounts_url": "https://accounts.zoho.eu",
                "scopes": "ZohoBooks.accountants.CREATE,ZohoBooks.settings.READ",
                "publish": "draft_then_publish",
                "redirect_uri": "https://airflow.example/cb",
                "timeout": 12.0,
            },
            id="extras-plain-and-prefixed",
        ),
    ],
)
def test_connection_params(conn, expected):
    params = ZohoBooksHook.connection_params(conn)
    assert {key: getattr(params, key) for key in expected} == expected
    assert (params.client_id, params.client_secret) == ("ID", "SECRET") and "SECRET" not in repr(params)


def test_an_unknown_publish_mode_is_refused():
    conn = Connection(
        conn_id="z", conn_type="zoho_books", login="ID", password="S", extra='{"publish": "maybe"}'
    )
    with pytest.raises(LedgerError, match="publish"):
        ZohoBooksHook.connection_params(conn)


def test_hook_is_a_discoverable_airflow_hook_and_registered():
    assert (
        ZohoBooksHook.conn_name_attr,
        ZohoBooksHook.default_conn_name,
        ZohoBooksHook.conn_type,
        ZohoBooksHook.hook_name,
    ) == ("zoho_books_conn_id", "zoho_books_default", "zoho_books", "Zoho Books")
    assert ledger_hook_class("zoho_books") is ZohoBooksHook
    with pytest.raises(TypeError):
        ZohoBooksHook("zoho_books_default")  # keyword-only


# --- the request body -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["published", "draft"])
def test_journal_body_passes_the_schema_with_exact_amounts(status):
    body = ZohoBooksHook.journal_body(worked_example(), status=status)
    wire = dumps_json(body).decode()
    assert '"amount": 184.91' in wire and '"amount": 0.43' in wire and "-" not in re.sub(r'"[^"]*"', "", wire)
    assert journal_problems(json.loads(wire)) == []
    assert (body["reference_number"], body["journal_type"], body["status"], body["journal_date"]) == (
        REFERENCE,
        "both",
        status,
        "2026-11-20",
    )
    assert [(x["debit_or_credit"], str(x["amount"])) for x in body["line_items"]][3] == ("credit", "184.74")
    assert all(
        set(x) == {"account_id", "debit_or_credit", "amount", "description"} for x in body["line_items"]
    )


# --- reading the organisation ----------------------------------------------------------------------


def test_list_accounts_pages_through_the_whole_chart(sandbox, hook):
    sandbox.settings(max_per_page=5, chart_default_filter="AccountType.Active")
    accounts = {a.code: a for a in hook.list_accounts()}
    assert len(accounts) == len(data.UAE_CHART)
    assert (accounts["1216"].active, accounts["1216"].status) == (False, "inactive")
    assert accounts["1215"].id == data.account_id(ORG, "1215") and accounts["4000"].type == "income"
    calls = sandbox.log("/chartofaccounts")
    assert len(calls) == 5 and all("filter_by=AccountType.All" in c["query"] for c in calls)
    assert all(c["organization_id"] == ORG and c["location"] == "eu" for c in calls)


@pytest.mark.parametrize(
    ("locks", "binding"),
    [
        pytest.param([], None, id="no-lock"),
        pytest.param([("accountant", "2026-10-31")], date(2026, 10, 31), id="accountant"),
        pytest.param([("sales", "2026-10-31")], None, id="another-module"),
        pytest.param([("all", "2026-09-30")], date(2026, 9, 30), id="all-modules"),
    ],
)
def test_get_settings_reads_name_currency_and_the_journals_lock_date(sandbox, hook, locks, binding):
    for module, day in locks:
        sandbox.lock(day, module)
    settings = hook.get_settings()
    assert (settings.organisation_name, settings.base_currency, settings.lock_date) == (
        data.DEMO_ORGANIZATION_NAME,
        "AED",
        binding,
    )


# --- posting and finding ---------------------------------------------------------------------------


def test_post_the_worked_example_looking_the_reference_up_first(sandbox, hook):
    posted = hook.post_journal(worked_example())
    assert (posted.posted, posted.status, posted.reference) == (True, "published", REFERENCE)
    assert posted.url == f"{sandbox.url}/_sandbox/journals/{posted.ledger_id}"
    (journal,) = sandbox.journals()
    assert journal["journal_id"] == posted.ledger_id and journal["status"] == "published"
    assert lines_of(journal) == WORKED_LINES and journal["reference_number"] == REFERENCE
    calls = [(e["method"], e["short_path"]) for e in sandbox.log("/books/v3/journals")]
    assert calls == [("GET", "/books/v3/journals"), ("POST", "/books/v3/journals")]
    assert "reference_number_startswith=MAMO-acme-20261120" in sandbox.log("/books/v3/journals")[0]["query"]


def test_draft_then_publish(sandbox, store, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZOHO_DRAFTS", json.dumps(connection(sandbox.url, publish="draft_then_publish"))
    )
    hook = ZohoBooksHook(zoho_books_conn_id="zoho_drafts", token_store=store, tenant_id=ORG)
    posted = hook.post_journal(worked_example())
    assert posted.posted and sandbox.journals()[0]["status"] == "published"
    assert len(sandbox.log(f"/journals/{posted.ledger_id}/status/publish", "POST")) == 1


def test_a_retried_post_never_duplicates(sandbox, hook):
    first = hook.post_journal(worked_example())
    again = hook.post_journal(worked_example())
    assert again.ledger_id == first.ledger_id and len(sandbox.journals()) == 1
    assert len(sandbox.log("/books/v3/journals", "POST")) == 1


@pytest.mark.parametrize("mode", ["drop", "500", "timeout"])
def test_a_lost_answer_is_looked_up_before_any_retry(sandbox, hook, mode):
    sandbox.fault(
        kind="lost_response", method="POST", path="/books/v3/journals", mode=mode, delay_seconds=2.5
    )
    posted = hook.post_journal(worked_example())
    (journal,) = sandbox.journals()
    assert posted.ledger_id == journal["journal_id"]
    deadline = time.monotonic() + 5  # a timed-out attempt is logged when its late answer goes out
    while not sandbox.log("/books/v3/journals", "POST") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sandbox.log("/books/v3/journals", "POST")) == 1, "found by reference, never posted twice"


def test_when_every_answer_is_lost_the_look_up_still_finds_the_one_posted(sandbox, hook):
    sandbox.fault(kind="error", method="GET", path="/books/v3/journals", status=503, times=None)
    sandbox.fault(kind="lost_response", method="POST", path="/books/v3/journals", mode="drop")
    with pytest.raises(LedgerError):
        hook.post_journal(worked_example())
    sandbox.admin("DELETE", "/faults", expect=204)
    assert hook.post_journal(worked_example()).ledger_id == sandbox.journals()[0]["journal_id"]
    assert len(sandbox.journals()) == 1


def test_a_draft_of_ours_is_published_not_posted_again(sandbox, hook, grant):
    _post_directly(grant, ZohoBooksHook.journal_body(worked_example(), status="draft"))  # an interrupted run
    assert hook.find_journal(REFERENCE).status == "draft" and not hook.find_journal(REFERENCE).posted
    posted = hook.post_journal(worked_example())
    (journal,) = sandbox.journals()
    assert posted.ledger_id == journal["journal_id"] and journal["status"] == "published"


def test_a_journal_with_our_reference_but_other_lines_is_a_conflict(sandbox, hook):
    hook.post_journal(worked_example())
    other = worked_example(lines=[line("1215", Side.DEBIT, 100, "x"), line("4000", Side.CREDIT, 100, "y")])
    with pytest.raises(LedgerConflict, match="lines differ"):
        hook.post_journal(other)
    assert len(sandbox.journals()) == 1


def test_find_journal_by_reference(sandbox, hook):
    request = worked_example()
    posted = hook.post_journal(request)
    hook.post_journal(worked_example(reference="MAMO-acme-2026112", day=date(2026, 11, 21)))  # a prefix of it
    found = hook.find_journal(REFERENCE)
    assert (found.ledger_id, found.posted, found.journal_date) == (posted.ledger_id, True, date(2026, 11, 20))
    assert found.lines == request.lines
    assert hook.find_journal("MAMO-acme-20261121") is None
    assert hook.find_journal("MAMO-acme-2026112").ledger_id != posted.ledger_id


def _post_directly(grant: dict, body: dict) -> None:
    """Someone else (a person, another integration) posts to Zoho Books with our reference."""
    requests.post(
        f"{grant['api_domain']}/books/v3/journals",
        params={"organization_id": ORG},
        data=dumps_json(body),
        headers={
            "Authorization": f"Zoho-oauthtoken {grant['access_token']}",
            "Content-Type": "application/json",
        },
        timeout=10,
    ).raise_for_status()


def test_two_published_journals_with_our_reference_are_a_conflict(sandbox, hook, grant):
    hook.post_journal(worked_example())
    _post_directly(grant, ZohoBooksHook.journal_body(worked_example()))  # Zoho accepts duplicates
    with pytest.raises(LedgerConflict, match="2 published journals") as caught:
        hook.find_journal(REFERENCE)
    assert "all but one" in caught.value.guidance


# --- voiding ----------------------------------------------------------------------------------------


def test_void_posts_a_reversing_journal_and_a_re_post_follows(sandbox, hook):
    posted = hook.post_journal(worked_example())
    voided = hook.void_journal(REFERENCE)
    assert (voided.ledger_id, voided.status, voided.posted) == (posted.ledger_id, "reversed", False)
    original, reversal = sandbox.journals()
    assert original["status"] == "published" and reversal["reference_number"] == REFERENCE + VOID_SUFFIX
    assert reversal["status"] == "published" and posted.ledger_id in reversal["notes"]
    flipped = {"debit": "credit", "credit": "debit"}
    assert lines_of(reversal) == [(c, flipped[s], a) for c, s, a in WORKED_LINES]
    assert reversal["journal_date"] == "2026-11-20"

    found = hook.find_journal(REFERENCE)
    assert (found.ledger_id, found.status, found.posted) == (posted.ledger_id, "reversed", False)
    assert hook.void_journal(REFERENCE).status == "reversed" and len(sandbox.journals()) == 2  # nothing more

    again = hook.post_journal(worked_example(), idempotency_key=f"{REFERENCE}:{posted.ledger_id}")
    assert again.ledger_id not in (posted.ledger_id, reversal["journal_id"]) and len(sandbox.journals()) == 3
    assert hook.find_journal(REFERENCE).ledger_id == again.ledger_id
    assert hook.void_journal("MAMO-acme-20991231") is None


def test_void_in_a_locked_period_is_refused(sandbox, hook):
    hook.post_journal(worked_example())
    sandbox.lock("2026-11-30")
    with pytest.raises(LedgerLockedPeriod, match="2026-11-30"):
        hook.void_journal(REFERENCE)
    assert len(sandbox.journals()) == 1 and hook.find_journal(REFERENCE).posted


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "request_", "error", "words"),
    [
        pytest.param(
            lambda box: box.account("6110", is_active=False),
            worked_example(),
            LedgerAccountError,
            ["6110", "inactive", "Map Processing fees to an active account"],
            id="inactive-account",
        ),
        pytest.param(
            lambda box: box.account("4000", deleted=True),
            worked_example(),
            LedgerAccountError,
            ["4000", "deleted", "Map Sales to an active account"],
            id="deleted-account",
        ),
        pytest.param(
            lambda box: box.lock("2026-11-30"),
            worked_example(),
            LedgerLockedPeriod,
            ["2026-11-20", "the period is locked in Zoho Books before 2026-11-30", "Transaction Locking"],
            id="period-locked",
        ),
        pytest.param(
            lambda box: None,
            worked_example(
                lines=[line("1215", Side.DEBIT, 19398, "clearing"), line("4000", Side.CREDIT, 18474, "sales")]
            ),
            LedgerValidationError,
            ["unbalanced", "debits and credits differ"],
            id="unbalanced",
        ),
    ],
)
def test_refusals_raise_the_class_a_finance_user_can_act_on(sandbox, hook, setup, request_, error, words):
    setup(sandbox)
    with pytest.raises(error) as caught:
        hook.post_journal(request_)
    assert type(caught.value) is error
    text = f"{caught.value} {caught.value.guidance}"
    assert all(word in text for word in words), text
    assert caught.value.ledger_messages, "keeps Zoho's own message"
    assert len(sandbox.log("/books/v3/journals", "POST")) == 1, "refusals are never retried"
    assert sandbox.journals() == []


def test_a_deleted_organisation_needs_a_person(sandbox, hook, store):
    sandbox.admin("PATCH", f"/organisations/{ORG}", {"deleted": True})
    with pytest.raises(LedgerAuthError) as caught:
        hook.get_settings()
    assert ORG in caught.value.guidance and "Reconnect Zoho Books" in caught.value.guidance
    assert "no longer shared" in store.needs_reconnect


# --- tokens -----------------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_at_the_grants_data_centre(sandbox, store, hook, grant):
    old = store.current()
    assert old.extra == {
        "api_domain": f"{sandbox.url}/eu/api",
        "accounts_server": f"{sandbox.url}/eu/accounts",
    }
    store.replace(expired(old))
    hook.get_settings()
    (saved,) = store.saved
    assert saved.refresh_token == old.refresh_token, "Zoho's refresh token never rotates"
    assert saved.access_token != old.access_token and saved.extra == old.extra
    assert saved.access_expires_at > datetime.now(UTC) + timedelta(minutes=59)
    (refresh,) = sandbox.refreshes()
    assert refresh["location"] == "eu" and refresh["path"] == "/eu/accounts/oauth/v2/token"
    assert store.current().access_token == saved.access_token


def test_the_access_token_is_shared_not_refreshed_per_call(sandbox, store, hook):
    for _ in range(3):
        ZohoBooksHook(zoho_books_conn_id=CONN_ID, token_store=store, tenant_id=ORG).list_accounts()
    assert sandbox.refreshes() == [] and store.saved == []


def test_two_workers_refreshing_at_once_refresh_once(sandbox, store):
    sandbox.fault(kind="delay", method="POST", path="/oauth/v2/token", delay_seconds=0.3, times=None)
    store.replace(expired(store.current()))
    hooks = [ZohoBooksHook(zoho_books_conn_id=CONN_ID, token_store=store, tenant_id=ORG) for _ in range(2)]
    for worker in hooks:
        _ = worker.params
    barrier, results = threading.Barrier(2), []

    def work(worker: ZohoBooksHook) -> None:
        barrier.wait()
        results.append(worker.get_settings().base_currency)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["AED", "AED"]
    assert len(sandbox.refreshes()) == 1 and len(store.saved) == 1 and store.refresh_blocks == 2


def test_a_401_forces_one_refresh_and_one_retry(sandbox, store, hook):
    sandbox.advance(3600)  # Zoho's clock says the access token is dead; ours still thinks it fresh
    assert hook.get_settings().base_currency == "AED"
    assert len(store.saved) == 1 and len(sandbox.refreshes()) == 1
    assert [r["status"] for r in sandbox.log("/organizations")] == [401, 200]


@pytest.mark.parametrize("status", [200, 400], ids=["invalid_code-http-200", "invalid_code-http-400"])
def test_a_dead_grant_means_reconnect_and_is_not_retried(sandbox, store, hook, status):
    sandbox.settings(oauth_error_status=status)
    tokens = store.current()
    store.replace(TokenSet(None, "1000.dead.token", None, ORG, tokens.extra))
    with pytest.raises(LedgerAuthError) as caught:
        hook.list_accounts()
    assert "invalid_code" in str(caught.value) and "Reconnect Zoho Books" in caught.value.guidance
    assert "invalid_code" in store.needs_reconnect
    assert len(sandbox.refreshes()) == 1 and sandbox.log("/chartofaccounts") == []


def test_a_grant_evicted_by_the_twenty_token_cap_means_reconnect(sandbox, store, hook):
    sandbox.settings(refresh_tokens_per_minute=100)
    for _ in range(20):  # the same user connects 20 more times (other companies, other apps' worth)
        sandbox.admin("POST", "/grants", {}, 201)
    store.replace(expired(store.current()))
    with pytest.raises(LedgerAuthError, match="invalid_code"):
        hook.get_settings()
    assert store.needs_reconnect


def test_more_than_ten_access_tokens_in_ten_minutes_is_rate_limited(sandbox, store, hook, grant):
    for _ in range(9):
        requests.post(
            f"{grant['accounts_server']}/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": grant["refresh_token"],
                "client_id": data.DEFAULT_CLIENT_ID,
                "client_secret": data.DEFAULT_CLIENT_SECRET,
            },
            timeout=10,
        )
    store.replace(expired(store.current()))
    with pytest.raises(LedgerRateLimited, match="10 minutes"):
        hook.get_settings()
    assert store.needs_reconnect is None


@pytest.mark.parametrize(
    ("case", "words"),
    [("no-data-centre-saved", "no api_domain"), ("wrong-data-centre", "freshly refreshed")],
)
def test_the_grants_data_centre_is_required(sandbox, store, hook, case, words):
    with session_scope(store.engine) as session:
        get_ledger_connection(session, store.company_id).grant_extra = (
            None
            if case == "no-data-centre-saved"
            else {"api_domain": f"{sandbox.url}/us/api", "accounts_server": f"{sandbox.url}/eu/accounts"}
        )
    with pytest.raises(LedgerAuthError, match=words):
        hook.list_accounts()
    assert store.needs_reconnect


# --- rate limits and outages ------------------------------------------------------------------------


def test_a_per_minute_429_backs_off_and_retries(sandbox, hook):
    sandbox.fault(
        kind="rate_limit", method="GET", path="/books/v3/chartofaccounts", problem="minute", times=2
    )
    assert hook.list_accounts()
    assert [r["status"] for r in sandbox.log("/chartofaccounts")] == [429, 429, 200]


def test_the_daily_limit_raises_rate_limited_at_once(sandbox, hook):
    sandbox.settings(limit_per_day=1)
    hook.list_accounts()
    with pytest.raises(LedgerRateLimited) as caught:
        hook.post_journal(worked_example())
    assert caught.value.problem == "Daily" and "daily API limit" in caught.value.guidance
    assert len(sandbox.log("/books/v3/journals")) == 1 and sandbox.journals() == []


def test_a_long_retry_after_raises_rate_limited(sandbox, hook):
    sandbox.settings(limit_per_minute=1, rate_limit_retry_after=True)
    hook.list_accounts()
    with pytest.raises(LedgerRateLimited, match="rate limited until"):
        hook.list_accounts()


def test_5xx_is_retried(sandbox, hook):
    sandbox.fault(kind="error", method="GET", path="/books/v3/chartofaccounts", status=503, times=2)
    assert hook.list_accounts()
    assert [r["status"] for r in sandbox.log("/chartofaccounts")] == [503, 503, 200]


# --- logging and the UI's Test button ---------------------------------------------------------------


def test_no_token_or_secret_is_logged(sandbox, store, hook, caplog, capfd):
    old = store.current()
    store.replace(expired(old))
    caplog.set_level(logging.DEBUG)  # urllib3 included
    hook.post_journal(worked_example())
    hook.void_journal(REFERENCE)
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    tokens = store.current()
    assert (
        "Zoho Books POST /journals -> 201 (organisation" in logged
        and "Refreshed the Zoho Books access token" in logged
    )
    for secret in (old.access_token, old.refresh_token, tokens.access_token, data.DEFAULT_CLIENT_SECRET):
        assert secret not in logged
    assert tokens.refresh_token not in repr(tokens) and "zoho" not in repr(tokens).lower()


def test_test_connection(sandbox, hook, monkeypatch):
    assert hook.test_connection() == (True, f"Connected to {data.DEMO_ORGANIZATION_NAME} (base currency AED)")
    assert ZohoBooksHook(zoho_books_conn_id=CONN_ID).test_connection()[0] is True  # no organisation: the app
    bad = connection(sandbox.url) | {"password": "wrong"}
    monkeypatch.setenv("AIRFLOW_CONN_ZOHO_BAD", json.dumps(bad))
    ok, message = ZohoBooksHook(zoho_books_conn_id="zoho_bad").test_connection()
    assert not ok and "invalid_client" in message


# --- the connect flow helpers -----------------------------------------------------------------------


def _consent(url: str) -> dict:
    page = requests.get(url, timeout=10)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    redirect = requests.post(
        f"{base}{action}", data={"txn": txn, "decision": "allow"}, allow_redirects=False, timeout=10
    )
    return {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["location"]).query).items()}


def test_connect_flow_helpers(sandbox, make_store):
    params = ZohoBooksHook(zoho_books_conn_id=CONN_ID).params
    url = zoho_identity.authorization_url(params, "state-7")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{sandbox.url}/us/accounts/oauth/v2/auth?")
    assert (query["access_type"], query["prompt"], query["scope"]) == (
        ["offline"],
        ["consent"],
        [data.DEFAULT_SCOPES],
    )
    back = _consent(url)
    assert (back["state"], back["location"]) == ("state-7", "eu")

    exchanged = zoho_identity.exchange_code(params, back["code"], back["accounts-server"])
    assert exchanged["refresh_token"] and exchanged["api_domain"] == f"{sandbox.url}/eu/api"
    assert exchanged["extra"] == {
        "api_domain": f"{sandbox.url}/eu/api",
        "accounts_server": f"{sandbox.url}/eu/accounts",
    }
    orgs = zoho_identity.list_organizations(params, exchanged["access_token"], exchanged["api_domain"])
    assert {o["organization_id"] for o in orgs} == {ORG, data.SECOND_ORGANIZATION_ID}

    # The connect flow stores the grant (with its data centre); the hook then works from the DB alone.
    store = make_store(zoho_identity.token_set(exchanged, ORG), platform="zoho_books")
    assert store.current().extra == exchanged["extra"]
    assert (
        ZohoBooksHook(zoho_books_conn_id=CONN_ID, token_store=store, tenant_id=ORG)
        .get_settings()
        .base_currency
        == "AED"
    )

    # Reconnecting a live grant: no prompt=consent, so Zoho mints no refresh token and the stored one is kept.
    again_url = zoho_identity.authorization_url(params, "state-8", first_connect=False)
    assert "prompt" not in parse_qs(urlsplit(again_url).query)
    again = zoho_identity.exchange_code(params, _consent(again_url)["code"], back["accounts-server"])
    assert again["refresh_token"] is None
    kept = zoho_identity.token_set(again, ORG, refresh_token=store.current().refresh_token)
    assert kept.refresh_token == exchanged["refresh_token"]
    assert len(sandbox.admin("GET", f"/users/{data.DEMO_USER}/refresh_tokens")["refresh_tokens"]) == 1

    with pytest.raises(LedgerAuthError, match="not Zoho's"):
        zoho_identity.exchange_code(params, "code", "https://evil.example/accounts")
    zoho_identity.revoke(params, exchanged["refresh_token"], exchanged["accounts_server"])
    store.replace(expired(store.current()))
    with pytest.raises(LedgerAuthError, match="invalid_code"):
        ZohoBooksHook(zoho_books_conn_id=CONN_ID, token_store=store, tenant_id=ORG).get_settings()


@pytest.mark.parametrize(
    ("home", "server", "trusted"),
    [
        ("https://accounts.zoho.com", "https://accounts.zoho.eu", True),
        ("https://accounts.zoho.com", "https://accounts.zohocloud.ca", True),
        ("https://accounts.zoho.com", "http://accounts.zoho.eu", False),
        ("https://accounts.zoho.com", "https://accounts.zoho.eu.evil.example", False),
        ("https://accounts.zoho.com", "https://127.0.0.1:8703/eu/accounts", False),
        ("http://127.0.0.1:8703/us/accounts", "http://127.0.0.1:8703/eu/accounts", True),
        ("http://127.0.0.1:8703/us/accounts", "http://127.0.0.1:9999/eu/accounts", False),
    ],
)
def test_only_zohos_accounts_servers_get_the_client_secret(home, server, trusted):
    params = zoho_identity.ZohoParams(client_id="id", client_secret="s", accounts_url=home)
    if trusted:
        assert zoho_identity.trusted_accounts_server(params, server) == server
    else:
        with pytest.raises(LedgerAuthError):
            zoho_identity.trusted_accounts_server(params, server)


def test_journal_links_point_at_the_grants_books_app():
    params = zoho_identity.ZohoParams(client_id="id", client_secret="s")
    assert (
        zoho_identity.journal_link(params, "https://www.zohoapis.eu", ORG, "46001")
        == f"https://books.zoho.eu/app/{ORG}#/journals/46001"
    )
    assert zoho_identity.journal_link(params, "http://127.0.0.1:8703/eu/api", ORG, "46001") == (
        "http://127.0.0.1:8703/_sandbox/journals/46001"
    )
