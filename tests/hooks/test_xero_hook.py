"""``XeroHook`` against the Xero sandbox over real sockets; the Airflow connection comes from
``AIRFLOW_CONN_XERO_TEST`` (JSON), as a deployment would give it, and the tokens live in the
product's ``DbTokenStore`` on PostgreSQL (``make_store`` in ``conftest.py``)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from airflow.sdk import Connection
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from token_stores import expired

from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerAuthError,
    LedgerLockedPeriod,
    LedgerRateLimited,
    LedgerUnavailable,
    LedgerValidationError,
)
from mamo_revenue.hooks import xero as xero_module
from mamo_revenue.hooks.ledger import JournalRequest, LedgerLine, Side
from mamo_revenue.hooks.oauth import pkce_pair, token_set
from mamo_revenue.hooks.tokens import TokenSet
from mamo_revenue.hooks.xero import XeroHook, XeroParams
from mamo_sandboxes import xero_data as data
from mamo_sandboxes.xero import DEFAULT_SPEC_PATH, create_app

SANDBOX_APP = create_app  # what the ``server`` fixture (conftest.py) serves
TENANT = data.DEMO_TENANT_ID
REFERENCE = "MAMO-acme-20261120"
CONN_ID = "xero_test"


# --- fixtures ---------------------------------------------------------------------------------------


class Sandbox:
    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, body=None) -> dict:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    def settings(self, **changes) -> None:
        self.admin("PATCH", "/settings", changes)

    def fault(self, **fault) -> None:
        self.admin("POST", "/faults", fault)

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/clock", {"advance_seconds": seconds})

    def journals(self) -> list[dict]:
        return self.admin("GET", f"/organisations/{TENANT}/journals")["journals"]

    def log(self, path_contains: str) -> list[dict]:
        return self.admin("GET", f"/requests?path_contains={path_contains}")["requests"]

    def refreshes(self) -> list[dict]:
        return [r for r in self.log("/identity/connect/token") if r["grant_type"] == "refresh_token"]


@pytest.fixture
def sandbox(server, monkeypatch) -> Sandbox:
    box = Sandbox(server.url)
    box.admin("POST", "/reset")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "xero",
                "host": f"{server.url}/api.xro/2.0",
                "login": data.DEFAULT_CLIENT_ID,
                "password": data.DEFAULT_CLIENT_SECRET,
                "extra": {
                    "redirect_uri": data.DEFAULT_REDIRECT_URIS[0],
                    "backoff": 0.01,
                    "timeout": 2,
                    "max_rate_limit_wait": 5,
                    "max_attempts": 4,
                },
            }
        ),
    )
    return box


@pytest.fixture
def grant(sandbox) -> dict:
    return sandbox.admin("POST", "/grants", {"tenant_ids": [TENANT]})


@pytest.fixture
def store(grant, make_store):
    return make_store(token_set(grant, tenant_id=TENANT))


@pytest.fixture
def hook(store) -> XeroHook:
    return XeroHook(xero_conn_id=CONN_ID, token_store=store, tenant_id=TENANT)


def line(code: str, side: Side, minor: int, description: str) -> LedgerLine:
    return LedgerLine(
        account_id=data.account_id(TENANT, code),
        account_code=code,
        side=side,
        amount_minor=minor,
        description=description,
    )


def worked_example(
    *, reference: str = REFERENCE, day: date = date(2026, 11, 20), lines=None
) -> JournalRequest:
    """The 2026-11-20 journal of ACCOUNTING.md's worked example (codes as LEDGER_APIS.md §1.5)."""
    return JournalRequest(
        reference=reference,
        journal_date=day,
        narration=f"Mamo revenue {day.isoformat()}",
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
    ("1215", "184.91"),
    ("6110", "8.64"),
    ("2200", "0.43"),
    ("4000", "-184.74"),
    ("2200", "-9.24"),
]


# --- connection → parameters (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        pytest.param(
            Connection(
                conn_id="x",
                conn_type="xero",
                host="https://api.xero.com/api.xro/2.0",
                login="ID",
                password="SECRET",
            ),
            {
                "api_base": "https://api.xero.com/api.xro/2.0",
                "token_url": "https://identity.xero.com/connect/token",
                "authorize_url": "https://login.xero.com/identity/connect/authorize",
                "connections_url": "https://api.xero.com/connections",
                "scopes": "openid offline_access accounting.settings accounting.manualjournals",
            },
            id="real-xero",
        ),
        pytest.param(
            Connection(conn_id="x", conn_type="xero", host="api.xero.com", login="ID", password="SECRET"),
            {"api_base": "https://api.xero.com/api.xro/2.0"},
            id="bare-host",
        ),
        pytest.param(
            Connection(
                conn_id="x",
                conn_type="xero",
                host="http://127.0.0.1:8702/api.xro/2.0",
                login="ID",
                password="SECRET",
            ),
            {
                "token_url": "http://127.0.0.1:8702/identity/connect/token",
                "authorize_url": "http://127.0.0.1:8702/identity/connect/authorize",
                "connections_url": "http://127.0.0.1:8702/connections",
                "journal_url": "http://127.0.0.1:8702/_sandbox/journals/{id}",
            },
            id="sandbox-derived",
        ),
        pytest.param(
            Connection(
                conn_id="x",
                conn_type="xero",
                host="https://api.xero.com/api.xro/2.0",
                login="ID",
                password="SECRET",
                extra=json.dumps(
                    {
                        "extra__xero__token_url": "https://idp.example/token",
                        "scopes": "a  b",
                        "redirect_uri": "https://airflow.example/cb",
                        "timeout": "12",
                    }
                ),
            ),
            {
                "token_url": "https://idp.example/token",
                "scopes": "a b",
                "redirect_uri": "https://airflow.example/cb",
                "timeout": 12.0,
            },
            id="extras-plain-and-prefixed",
        ),
    ],
)
def test_connection_params(conn, expected):
    params = XeroHook.connection_params(conn)
    assert {key: getattr(params, key) for key in expected} == expected
    assert (params.client_id, params.client_secret) == ("ID", "SECRET")
    assert "SECRET" not in repr(params)


def test_hook_is_a_discoverable_airflow_hook():
    assert (XeroHook.conn_name_attr, XeroHook.default_conn_name, XeroHook.conn_type, XeroHook.hook_name) == (
        "xero_conn_id",
        "xero_default",
        "xero",
        "Xero",
    )
    with pytest.raises(TypeError):
        XeroHook("xero_default")  # keyword-only


# --- the request body -------------------------------------------------------------------------------


def test_journal_body_matches_the_spec_with_exact_two_decimal_amounts():
    body = XeroHook.journal_body(worked_example(lines=None))
    wire = xero_module.dumps_json(body).decode()
    assert '"LineAmount": 184.91' in wire and '"LineAmount": -184.74' in wire and '"LineAmount": 0.43' in wire
    with open(DEFAULT_SPEC_PATH, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    registry = Registry().with_resource("urn:spec", DRAFT4.create_resource(spec))
    validator = OAS30Validator({"$ref": "urn:spec#/components/schemas/ManualJournals"}, registry=registry)
    assert list(validator.iter_errors(json.loads(wire))) == []
    (journal,) = body["ManualJournals"]
    assert journal["Narration"] == "MAMO-acme-20261120 Mamo revenue 2026-11-20"
    assert (journal["Status"], journal["LineAmountTypes"], journal["Date"]) == (
        "POSTED",
        "NoTax",
        "2026-11-20",
    )
    assert "Url" not in journal and all("TaxType" not in line for line in journal["JournalLines"])


# --- reading the organisation ----------------------------------------------------------------------


def test_list_accounts_includes_archived_ones_as_inactive(hook):
    accounts = {a.code: a for a in hook.list_accounts()}
    assert accounts["1215"].active and accounts["1215"].id == data.account_id(TENANT, "1215")
    assert (accounts["1216"].active, accounts["1216"].status) == (False, "ARCHIVED")
    assert accounts["4000"].type == "REVENUE"


@pytest.mark.parametrize(
    ("locks", "binding"),
    [
        pytest.param({}, None, id="no-lock"),
        pytest.param(
            {"period_lock_date": "2026-10-31", "end_of_year_lock_date": "2025-12-31"},
            date(2026, 10, 31),
            id="period-lock-later",
        ),
        pytest.param(
            {"period_lock_date": "2025-06-30", "end_of_year_lock_date": "2025-12-31"},
            date(2025, 12, 31),
            id="end-of-year-later",
        ),
    ],
)
def test_get_settings_reads_currency_and_the_binding_lock_date(sandbox, hook, locks, binding):
    if locks:
        sandbox.admin("PATCH", f"/organisations/{TENANT}", locks)
    settings = hook.get_settings()
    assert (settings.organisation_name, settings.base_currency, settings.lock_date) == (
        data.DEMO_TENANT_NAME,
        "AED",
        binding,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/Date(1793404800000+0000)/", date(2026, 10, 31)),
        ("/Date(1793404800000)/", date(2026, 10, 31)),
        ("/Date(1793390400000+0400)/", date(2026, 10, 31)),  # 20:00 UTC the day before, in UTC+4
        ("2026-10-31T00:00:00", date(2026, 10, 31)),
        (None, None),
    ],
)
def test_parse_xero_date(value, expected):
    assert xero_module.parse_xero_date(value) == expected


# --- posting and finding ---------------------------------------------------------------------------


def test_post_the_worked_example(sandbox, hook):
    posted = hook.post_journal(worked_example())
    assert posted.posted and posted.status == "POSTED" and posted.reference == REFERENCE
    assert posted.url == f"{sandbox.url}/_sandbox/journals/{posted.ledger_id}"
    (journal,) = sandbox.journals()
    assert journal["ManualJournalID"] == posted.ledger_id and journal["Status"] == "POSTED"
    assert journal["Narration"] == "MAMO-acme-20261120 Mamo revenue 2026-11-20"
    assert [(j["AccountCode"], f"{j['LineAmount']:.2f}") for j in journal["JournalLines"]] == WORKED_LINES
    (put,) = sandbox.log("/ManualJournals")
    assert (put["method"], put["idempotency_key"], put["query"]) == (
        "PUT",
        REFERENCE,
        "summarizeErrors=false",
    )


def test_find_journal_by_reference(sandbox, hook, grant):
    request = worked_example()
    posted = hook.post_journal(request)
    hook.post_journal(worked_example(reference="MAMO-acme-2026112", day=date(2026, 11, 21)))  # a prefix of it
    found = hook.find_journal(REFERENCE)
    assert (found.ledger_id, found.posted, found.journal_date) == (posted.ledger_id, True, date(2026, 11, 20))
    assert found.lines == request.lines
    assert hook.find_journal("MAMO-acme-20261121") is None
    assert hook.find_journal("MAMO-acme-2026112").ledger_id != posted.ledger_id

    requests.post(
        f"{sandbox.url}/api.xro/2.0/ManualJournals/{posted.ledger_id}",
        timeout=10,
        json={"ManualJournals": [{"Status": "VOIDED"}]},
        headers={
            "Authorization": f"Bearer {grant['access_token']}",
            "xero-tenant-id": TENANT,
            "Accept": "application/json",
        },
    ).raise_for_status()
    voided = hook.find_journal(REFERENCE)
    assert (voided.ledger_id, voided.status, voided.posted) == (posted.ledger_id, "VOIDED", False)


@pytest.mark.parametrize(
    ("setup", "request_", "error", "words"),
    [
        pytest.param(
            lambda box: box.admin("PATCH", f"/organisations/{TENANT}/accounts/6110", {"Status": "ARCHIVED"}),
            worked_example(),
            LedgerAccountError,
            ["6110", "archived", "map the category"],
            id="archived-account",
        ),
        pytest.param(
            lambda box: None,
            worked_example(
                lines=[
                    line("1215", Side.DEBIT, 500, "x"),
                    LedgerLine("", "6199", Side.CREDIT, 500, "unknown code"),
                ]
            ),
            LedgerAccountError,
            ["6199", "void it in Xero"],
            id="unknown-account-warning",
        ),
        pytest.param(
            lambda box: box.settings(unknown_account="reject"),
            worked_example(
                lines=[
                    line("1215", Side.DEBIT, 500, "x"),
                    LedgerLine("", "6199", Side.CREDIT, 500, "unknown code"),
                ]
            ),
            LedgerAccountError,
            ["6199", "does not exist"],
            id="unknown-account-rejected",
        ),
        pytest.param(
            lambda box: box.admin("PATCH", f"/organisations/{TENANT}", {"period_lock_date": "2026-11-30"}),
            worked_example(),
            LedgerLockedPeriod,
            ["2026-11-20", "lock date"],
            id="period-locked",
        ),
        pytest.param(
            lambda box: None,
            worked_example(
                lines=[line("1215", Side.DEBIT, 19398, "clearing"), line("4000", Side.CREDIT, 18474, "sales")]
            ),
            LedgerValidationError,
            ["debits and credits differ"],
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
    assert caught.value.ledger_messages, "keeps Xero's own message"
    assert len(sandbox.log("/ManualJournals")) == 1, "validation refusals are never retried"


def test_unknown_account_warning_names_the_journal_xero_saved(sandbox, hook):
    request = worked_example(
        lines=[line("1215", Side.DEBIT, 500, "x"), LedgerLine("", "6199", Side.CREDIT, 500, "?")]
    )
    with pytest.raises(LedgerAccountError) as caught:
        hook.post_journal(request)
    (saved,) = sandbox.journals()
    assert caught.value.ledger_id == saved["ManualJournalID"]
    assert saved["ManualJournalID"] in caught.value.guidance
    assert "Account code '6199' has been removed" in str(caught.value)


def test_a_code_that_now_names_another_account_is_caught_line_by_line(sandbox, hook):
    # The mapping remembers 4000's AccountID, but the code sent is 4010: Xero posts to another account.
    request = worked_example(
        lines=[
            line("1215", Side.DEBIT, 500, "x"),
            LedgerLine(data.account_id(TENANT, "4000"), "4010", Side.CREDIT, 500, "sales"),
        ]
    )
    with pytest.raises(LedgerValidationError, match="now belongs to account"):
        hook.post_journal(request)


def test_a_draft_does_not_count_as_posted(sandbox, hook, monkeypatch):
    monkeypatch.setattr(
        XeroHook,
        "journal_body",
        staticmethod(
            lambda request, original=XeroHook.journal_body: {
                "ManualJournals": [
                    {k: v for k, v in original(request)["ManualJournals"][0].items() if k != "Status"}
                ]
            }
        ),
    )
    with pytest.raises(LedgerValidationError, match="as DRAFT, not POSTED"):
        hook.post_journal(worked_example())


# --- tokens ----------------------------------------------------------------------------------------


def test_expired_access_token_is_refreshed_and_the_rotated_token_saved_first(sandbox, store, hook):
    old = store.current()
    store.replace(expired(old))
    hook.get_settings()
    (saved,) = store.saved
    assert saved.refresh_token != old.refresh_token and saved.access_token != old.access_token
    assert saved.tenant_id == TENANT and saved.access_expires_at > datetime.now(UTC) + timedelta(minutes=29)
    assert len(sandbox.refreshes()) == 1
    # The saved token is the live one: long after the old one's grace window, it still refreshes.
    sandbox.settings(refresh_reuse="single_use")
    sandbox.advance(3600)
    store.replace(expired(store.current()))
    hook.get_settings()
    assert len(store.saved) == 2 and len(sandbox.refreshes()) == 2


def test_token_is_refreshed_60_seconds_before_expiry(sandbox, store, hook):
    tokens = store.current()
    store.replace(
        TokenSet(tokens.access_token, tokens.refresh_token, datetime.now(UTC) + timedelta(seconds=50), TENANT)
    )
    hook.list_accounts()
    assert len(store.saved) == 1


def test_a_401_forces_one_refresh_and_one_retry(sandbox, store, hook):
    sandbox.advance(31 * 60)  # Xero's clock says the access token is dead; ours still thinks it fresh
    assert hook.get_settings().base_currency == "AED"
    assert len(store.saved) == 1 and len(sandbox.refreshes()) == 1
    assert [r["status"] for r in sandbox.log("/Organisation")] == [401, 200]


def test_two_workers_refreshing_at_once_refresh_once_and_keep_a_live_token(sandbox, store):
    sandbox.settings(refresh_reuse="single_use")  # a second refresh with the same token would kill the grant
    sandbox.fault(kind="delay", method="POST", path="/identity/connect/token", delay_seconds=0.3, times=None)
    store.replace(expired(store.current()))
    hooks = [XeroHook(xero_conn_id=CONN_ID, token_store=store, tenant_id=TENANT) for _ in range(2)]
    for worker in hooks:
        _ = worker.params  # resolve the connection before the race
    barrier, results = threading.Barrier(2), []

    def work(worker: XeroHook) -> None:
        barrier.wait()
        results.append(worker.get_settings().base_currency)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["AED", "AED"]
    assert len(sandbox.refreshes()) == 1 and len(store.saved) == 1 and store.refresh_blocks == 2
    sandbox.admin("DELETE", "/faults")
    sandbox.advance(3600)
    store.replace(expired(store.current()))
    assert hooks[0].get_settings().base_currency == "AED"  # the stored refresh token is alive
    assert store.needs_reconnect is None


@pytest.mark.parametrize(("reuse", "outcome"), [("grace", "refreshed"), ("single_use", "reconnect")])
def test_a_lost_refresh_answer_is_retried_with_the_old_token(sandbox, store, hook, reuse, outcome):
    """Why Xero's grace window matters: the retry reuses the refresh token whose answer was lost."""
    sandbox.settings(refresh_reuse=reuse)
    sandbox.fault(kind="lost_response", method="POST", path="/identity/connect/token", mode="drop")
    store.replace(expired(store.current()))
    if outcome == "refreshed":
        assert hook.get_settings().base_currency == "AED"
        assert len(store.saved) == 1 and store.needs_reconnect is None
    else:
        with pytest.raises(LedgerAuthError):
            hook.get_settings()
        assert store.saved == [] and "invalid_grant" in store.needs_reconnect
    assert len(sandbox.refreshes()) == 2


def test_invalid_grant_means_reconnect_and_is_not_retried(sandbox, store, hook):
    tokens = store.current()
    store.replace(TokenSet(None, "dead-refresh-token", None, TENANT))
    with pytest.raises(LedgerAuthError) as caught:
        hook.list_accounts()
    assert "invalid_grant" in str(caught.value) and "Reconnect Xero" in caught.value.guidance
    assert "invalid_grant" in store.needs_reconnect
    assert len(sandbox.refreshes()) == 1 and sandbox.log("/Accounts") == []
    assert tokens.refresh_token not in str(caught.value)


def test_a_second_401_means_reconnect(sandbox, make_store):
    grant = sandbox.admin(
        "POST", "/grants", {"tenant_ids": [TENANT], "scopes": "offline_access accounting.manualjournals"}
    )
    store = make_store(token_set(grant, tenant_id=TENANT))
    hook = XeroHook(xero_conn_id=CONN_ID, token_store=store, tenant_id=TENANT)
    with pytest.raises(LedgerAuthError, match="AuthorizationUnsuccessful"):
        hook.list_accounts()  # no accounting.settings scope: Xero answers 401 even to a fresh token
    assert store.needs_reconnect and len(sandbox.refreshes()) == 1
    assert [r["status"] for r in sandbox.log("/Accounts")] == [401, 401]


def test_a_403_means_reconnect(sandbox, store, hook, grant):
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    (connection,) = requests.get(f"{sandbox.url}/connections", headers=headers, timeout=10).json()
    requests.delete(
        f"{sandbox.url}/connections/{connection['id']}", headers=headers, timeout=10
    ).raise_for_status()
    with pytest.raises(LedgerAuthError, match="403"):
        hook.get_settings()
    assert store.needs_reconnect
    assert len(sandbox.log("/Organisation")) == 1


# --- rate limits and lost answers -------------------------------------------------------------------


def test_a_short_minute_limit_is_waited_out(sandbox, hook):
    sandbox.fault(kind="rate_limit", method="PUT", path="/ManualJournals", retry_after=1, problem="Minute")
    started = time.monotonic()
    assert hook.post_journal(worked_example()).posted
    assert time.monotonic() - started >= 1
    assert [r["status"] for r in sandbox.log("/ManualJournals")] == [429, 200]
    assert len(sandbox.journals()) == 1


def test_calls_slow_down_as_the_minute_allowance_runs_out(sandbox, store, monkeypatch):
    """Xero says what is left of the tenant's minute on every answer; below ``minute_reserve`` the hook
    waits (reserve − remaining) s before the next call rather than spend one on a 429."""
    connection = json.loads(os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"])
    connection["extra"]["minute_reserve"] = 3
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    sandbox.settings(limit_per_minute=6)
    hook = XeroHook(xero_conn_id=CONN_ID, token_store=store, tenant_id=TENANT)
    started = time.monotonic()
    for _ in range(5):  # remaining after each: 5, 4, 3, 2, 1 -> pauses 0, 0, 0, 1, 2
        hook.get_settings()
    assert 3 <= time.monotonic() - started < 10
    assert [r["status"] for r in sandbox.log("/Organisation")] == [200] * 5


def test_a_long_minute_wait_raises_rate_limited(sandbox, hook):
    sandbox.fault(kind="rate_limit", method="GET", path="/Accounts", retry_after=45, problem="Minute")
    with pytest.raises(LedgerRateLimited) as caught:
        hook.list_accounts()
    assert (caught.value.problem, caught.value.retry_after) == ("Minute", 45)
    assert "rate limited until" in str(caught.value)


def test_the_daily_limit_raises_rate_limited(sandbox, hook):
    sandbox.settings(limit_per_day=1)
    hook.get_settings()
    with pytest.raises(LedgerRateLimited) as caught:
        hook.list_accounts()
    assert caught.value.problem == "Daily" and caught.value.retry_after > 80000
    assert len(sandbox.log("/Accounts")) == 1


def test_5xx_is_retried(sandbox, hook):
    sandbox.fault(kind="error", method="GET", path="/Accounts", status=503, times=2)
    assert hook.list_accounts()
    assert [r["status"] for r in sandbox.log("/Accounts")] == [503, 503, 200]


@pytest.mark.parametrize("idempotency", ["replay", "reject_different_body"])
@pytest.mark.parametrize("mode", ["drop", "500", "timeout"])
def test_a_lost_answer_is_retried_with_the_same_key_and_posts_once(sandbox, hook, mode, idempotency):
    sandbox.settings(idempotency=idempotency)
    sandbox.fault(kind="lost_response", method="PUT", path="/ManualJournals", mode=mode, delay_seconds=2.5)
    posted = hook.post_journal(worked_example())
    (journal,) = sandbox.journals()
    assert posted.ledger_id == journal["ManualJournalID"]
    deadline = time.monotonic() + 5  # a timed-out first attempt is logged when its late answer goes out
    while len(sandbox.log("/ManualJournals")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    puts = sandbox.log("/ManualJournals")
    assert len(puts) == 2 and {p["idempotency_key"] for p in puts} == {REFERENCE}
    assert sorted(p["replayed"] for p in puts) == [False, True]  # the retry got the first answer again


def test_when_every_answer_is_lost_find_journal_still_finds_the_one_posted(sandbox, hook):
    sandbox.fault(kind="lost_response", method="PUT", path="/ManualJournals", mode="drop", times=None)
    with pytest.raises(LedgerUnavailable):
        hook.post_journal(worked_example())
    sandbox.admin("DELETE", "/faults")
    found = hook.find_journal(REFERENCE)
    assert found is not None and found.posted
    assert len(sandbox.journals()) == 1 and len(sandbox.log("/ManualJournals")) == 4 + 2


# --- logging and the UI's Test button ---------------------------------------------------------------


def test_no_token_or_secret_is_logged(sandbox, store, hook, caplog, capfd):
    old = store.current()
    store.replace(expired(old))
    caplog.set_level(logging.DEBUG)  # urllib3 included
    hook.post_journal(worked_example())
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err  # the SDK's structlog writes to the console
    tokens = store.current()
    assert "Xero PUT /ManualJournals -> 200 (tenant" in logged and "Refreshed the Xero access token" in logged
    for secret in (
        old.access_token,
        old.refresh_token,
        tokens.access_token,
        tokens.refresh_token,
        data.DEFAULT_CLIENT_SECRET,
    ):
        assert secret not in logged
    assert tokens.refresh_token not in repr(tokens)


def test_test_connection(sandbox, hook, monkeypatch):
    assert hook.test_connection() == (True, f"Connected to {data.DEMO_TENANT_NAME} (base currency AED)")
    assert XeroHook(xero_conn_id=CONN_ID).test_connection()[0] is True  # the UI's Test button: no tenant
    conn = json.loads(__import__("os").environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"])
    monkeypatch.setenv("AIRFLOW_CONN_XERO_BAD", json.dumps(conn | {"password": "wrong"}))
    ok, message = XeroHook(xero_conn_id="xero_bad").test_connection()
    assert not ok and "invalid_client" in message


# --- the connect flow helpers -----------------------------------------------------------------------


def test_connect_flow_helpers(sandbox):
    params: XeroParams = XeroHook(xero_conn_id=CONN_ID).params
    pair = pkce_pair()
    url = xero_module.authorization_url(params, state="state-42", code_challenge=pair.challenge)
    page = requests.get(url, timeout=10)
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    redirect = requests.post(
        f"{sandbox.url}/identity/connect/authorize",
        allow_redirects=False,
        timeout=10,
        data={"txn": txn, "tenant": [TENANT, data.SECOND_TENANT_ID], "decision": "allow"},
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["location"]).query).items()}
    assert query["state"] == "state-42"

    tokens = xero_module.exchange_code(params, query["code"], pair.verifier)
    assert tokens["refresh_token"] and tokens["access_expires_at"] > datetime.now(UTC) + timedelta(minutes=29)
    tenants = xero_module.list_tenants(params, tokens["access_token"], tokens["auth_event_id"])
    assert {t["tenantId"] for t in tenants} == {TENANT, data.SECOND_TENANT_ID}
    with pytest.raises(LedgerAuthError):
        xero_module.exchange_code(params, query["code"], pair.verifier)  # codes are single-use

    second = next(t for t in tenants if t["tenantId"] == data.SECOND_TENANT_ID)
    assert xero_module.disconnect(params, tokens["access_token"], second["id"]) is True
    assert xero_module.disconnect(params, tokens["access_token"], second["id"]) is False
    refreshed = xero_module.refresh_tokens(params, tokens["refresh_token"])
    xero_module.revoke(params, refreshed["refresh_token"])
    with pytest.raises(LedgerAuthError):
        xero_module.refresh_tokens(params, refreshed["refresh_token"])
