"""Contract of the Zoho Books sandbox over real sockets: LEDGER_APIS.md §2 and the §6 defaults.

Request bodies are checked against the hand-written schema of §2.5 (``zoho_schema``); the data-centre
rules (§2.1) are exercised through the path prefix each data centre has in the sandbox.
"""

from __future__ import annotations

import copyreg
import pickle
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mamo_sandboxes import zoho_data as data
from mamo_sandboxes.zoho import ZohoSandbox, create_app
from mamo_sandboxes.zoho_schema import journal_problems

SANDBOX_APP = create_app  # what the ``server`` fixture (conftest.py) serves
ORG, OTHER_ORG, INDIA_ORG = data.DEMO_ORGANIZATION_ID, data.SECOND_ORGANIZATION_ID, data.INDIA_ORGANIZATION_ID
REDIRECT = data.DEFAULT_REDIRECT_URIS[0]


def acc(code: str, org: str = ORG) -> str:
    return data.account_id(org, code)


def body(reference="MAMO-acme-20261120", day="2026-11-20", status="published", lines=None) -> dict:
    """The request of LEDGER_APIS.md §2.5 (the worked example's 2026-11-20 journal), with our ids."""
    out = {
        "journal_date": day,
        "reference_number": reference,
        "journal_type": "both",
        "line_items": lines
        or [
            {
                "account_id": acc("1215"),
                "debit_or_credit": "debit",
                "amount": 184.91,
                "description": "Mamo clearing",
            },
            {
                "account_id": acc("6110"),
                "debit_or_credit": "debit",
                "amount": 8.64,
                "description": "Processing fees",
            },
            {
                "account_id": acc("2200"),
                "debit_or_credit": "debit",
                "amount": 0.43,
                "description": "VAT recoverable",
            },
            {
                "account_id": acc("4000"),
                "debit_or_credit": "credit",
                "amount": 184.74,
                "description": "Sales",
            },
            {
                "account_id": acc("2200"),
                "debit_or_credit": "credit",
                "amount": 9.24,
                "description": "VAT payable",
            },
        ],
    }
    if status is not None:
        out["status"] = status
    return out


# --- the server and a small client ------------------------------------------------------------------


class Zoho:
    """Test client: the admin API, the accounts servers and the Books API of one sandbox."""

    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, json=None, expect: int | None = 200):
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=json, timeout=10)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response.json() if response.content else {}

    def settings(self, **changes):
        self.admin("PATCH", "/settings", changes)

    def advance(self, seconds: float):
        self.admin("POST", "/clock", {"advance_seconds": seconds})

    def grant(self, **spec) -> dict:
        return self.admin("POST", "/grants", spec, expect=201)

    def token(self, location: str, **form) -> requests.Response:
        form = {"client_id": data.DEFAULT_CLIENT_ID, "client_secret": data.DEFAULT_CLIENT_SECRET} | form
        return requests.post(f"{self.url}/{location}/accounts/oauth/v2/token", data=form, timeout=10)

    def refresh(self, grant: dict, location: str | None = None) -> requests.Response:
        return self.token(
            location or grant["location"], grant_type="refresh_token", refresh_token=grant["refresh_token"]
        )

    def books(self, method: str, path: str, access_token: str, *, location="eu", org=ORG, **kw):
        params = kw.pop("params", {}) | ({"organization_id": org} if org else {})
        return requests.request(
            method,
            f"{self.url}/{location}/api/books/v3{path}",
            params=params,
            headers={"Authorization": f"Zoho-oauthtoken {access_token}"},
            timeout=10,
            **kw,
        )

    def consent(self, location="us", *, decision="allow", user=None, **query) -> dict:
        """Authorize at ``location``, answer the consent page as a browser would; the redirect's query."""
        query = {
            "response_type": "code",
            "client_id": data.DEFAULT_CLIENT_ID,
            "scope": data.DEFAULT_SCOPES,
            "redirect_uri": REDIRECT,
            "state": "s-1",
            "access_type": "offline",
        } | query
        page = requests.get(f"{self.url}/{location}/accounts/oauth/v2/auth", params=query, timeout=10)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
        txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
        form = {"txn": txn, "decision": decision} | ({"user": user} if user else {})
        answer = requests.post(f"{self.url}{action}", data=form, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}

    def log(self, contains: str) -> list[dict]:
        return self.admin("GET", f"/requests?path_contains={contains}")["requests"]


@pytest.fixture
def zoho(server) -> Zoho:
    client = Zoho(server.url)
    client.admin("POST", "/reset")
    return client


@pytest.fixture
def grant(zoho) -> dict:
    return zoho.grant()


@pytest.fixture
def token(grant) -> str:
    return grant["access_token"]


# --- data centres and consent (§2.1, §2.2) ------------------------------------------------------------


def test_health_index_and_serverinfo(zoho):
    assert zoho.admin("GET", "/health") == {"ok": True, "organisations": 3}
    index = requests.get(f"{zoho.url}/", timeout=10).json()
    assert index["accounts_url"] == f"{zoho.url}/us/accounts" and index["demo_organization_id"] == ORG
    info = requests.get(f"{zoho.url}/us/accounts/oauth/serverinfo", timeout=10).json()
    assert info["result"] == "success"
    assert info["locations"]["eu"] == f"{zoho.url}/eu/accounts" and set(info["locations"]) == set(
        data.DATA_CENTRES
    )
    assert requests.get(f"{zoho.url}/xx/accounts/oauth/serverinfo", timeout=10).status_code == 404


def test_consent_at_com_comes_back_with_the_users_data_centre(zoho):
    query = zoho.consent("us")
    assert (query["location"], query["accounts-server"], query["state"]) == (
        "eu",
        f"{zoho.url}/eu/accounts",
        "s-1",
    )
    assert zoho.token(
        "us", grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT
    ).json() == {
        "error": "invalid_code"
    }  # the code lives in the user's data centre only (and it is now spent)

    query = zoho.consent("us")
    answer = zoho.token("eu", grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT)
    tokens = answer.json()
    assert answer.status_code == 200 and tokens["api_domain"] == f"{zoho.url}/eu/api"
    assert tokens["expires_in"] == 3600 and tokens["refresh_token"] and tokens["token_type"] == "Bearer"
    again = zoho.token("eu", grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT)
    assert (again.status_code, again.json()) == (200, {"error": "invalid_code"})  # codes are single-use

    orgs = zoho.books("GET", "/organizations", tokens["access_token"], org=None).json()["organizations"]
    assert {o["organization_id"] for o in orgs} == {ORG, OTHER_ORG}
    wrong_dc = zoho.books("GET", "/organizations", tokens["access_token"], location="us", org=None)
    assert (wrong_dc.status_code, wrong_dc.json()["code"]) == (401, 57)


def test_another_user_lands_in_another_data_centre(zoho):
    query = zoho.consent("us", user=data.INDIA_USER)
    assert (query["location"], query["accounts-server"]) == ("in", f"{zoho.url}/in/accounts")
    tokens = zoho.token(
        "in", grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT
    ).json()
    orgs = zoho.books("GET", "/organizations", tokens["access_token"], location="in", org=None).json()
    assert [o["organization_id"] for o in orgs["organizations"]] == [INDIA_ORG]


def test_codes_expire_after_two_minutes(zoho):
    query = zoho.consent()
    zoho.advance(121)
    answer = zoho.token("eu", grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT)
    assert answer.json() == {"error": "invalid_code"}


def test_deny_and_bad_authorize_requests(zoho):
    assert zoho.consent(decision="deny") == {"error": "access_denied", "state": "s-1"}
    base = {
        "response_type": "code",
        "client_id": data.DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": data.DEFAULT_SCOPES,
    }
    url = f"{zoho.url}/us/accounts/oauth/v2/auth"
    assert requests.get(url, params=base | {"client_id": "nobody"}, timeout=10).status_code == 400
    assert (
        requests.get(url, params=base | {"redirect_uri": "https://evil.example/cb"}, timeout=10).status_code
        == 400
    )
    bad_scope = requests.get(
        url, params=base | {"scope": "ZohoBooks.nothing.READ"}, allow_redirects=False, timeout=10
    )
    assert bad_scope.status_code == 302 and "error=invalid_scope" in bad_scope.headers["location"]


@pytest.mark.parametrize(
    ("first", "second", "refresh_on_second"),
    [
        pytest.param({}, {}, False, id="reconnect-without-prompt-mints-none"),
        pytest.param({}, {"prompt": "consent"}, True, id="prompt-consent-mints-a-new-one"),
        pytest.param({"access_type": "online"}, {"access_type": "online"}, False, id="online-never"),
    ],
)
def test_a_refresh_token_only_on_first_consent_or_with_prompt_consent(zoho, first, second, refresh_on_second):
    def exchange(query):
        return zoho.token(
            "eu", grant_type="authorization_code", code=zoho.consent(**query)["code"], redirect_uri=REDIRECT
        ).json()

    assert ("refresh_token" in exchange(first)) is (first.get("access_type", "offline") == "offline")
    assert ("refresh_token" in exchange(second)) is refresh_on_second


# --- tokens (§2.2 limits) ---------------------------------------------------------------------------------


def test_refresh_never_rotates_and_keeps_working(zoho, grant):
    first = zoho.refresh(grant).json()
    assert set(first) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert first["api_domain"] == grant["api_domain"] and first["access_token"] != grant["access_token"]
    zoho.advance(30 * 86400)
    later = zoho.refresh(grant)
    assert later.status_code == 200 and "refresh_token" not in later.json()
    assert zoho.books("GET", "/organizations", later.json()["access_token"], org=None).status_code == 200


def test_access_tokens_live_one_hour(zoho, token):
    assert zoho.books("GET", "/organizations", token, org=None).status_code == 200
    zoho.advance(3600)
    expired = zoho.books("GET", "/organizations", token, org=None)
    assert (expired.status_code, expired.json()) == (
        401,
        {"code": 57, "message": "You are not authorized to perform this operation"},
    )


def test_ten_access_tokens_per_ten_minutes(zoho, grant):
    for _ in range(9):  # the grant itself minted the first
        assert zoho.refresh(grant).status_code == 200
    blocked = zoho.refresh(grant)
    assert (blocked.status_code, blocked.json()["error"]) == (400, "Access Denied")
    zoho.advance(601)
    assert zoho.refresh(grant).status_code == 200


def test_twenty_refresh_tokens_per_user_the_21st_evicts_the_oldest(zoho):
    zoho.settings(refresh_tokens_per_minute=100)
    grants = [zoho.grant() for _ in range(21)]
    assert zoho.refresh(grants[0]).json() == {"error": "invalid_code"}
    assert zoho.books("GET", "/organizations", grants[0]["access_token"], org=None).status_code == 401
    assert all(
        zoho.refresh(g).status_code == 200 and "access_token" in zoho.refresh(g).json() for g in grants[1:3]
    )
    assert len(zoho.admin("GET", f"/users/{data.DEMO_USER}/refresh_tokens")["refresh_tokens"]) == 20


def test_five_refresh_tokens_a_minute_per_user(zoho):
    for _ in range(5):
        zoho.grant()
    assert zoho.admin("POST", "/grants", {}, expect=400)["error"] == "Access Denied"
    zoho.advance(61)
    zoho.grant()


def test_thirty_live_access_tokens_per_refresh_token(zoho, grant):
    zoho.settings(access_tokens_per_window=100)
    for _ in range(30):
        zoho.refresh(grant)
    assert zoho.books("GET", "/organizations", grant["access_token"], org=None).status_code == 401


@pytest.mark.parametrize(("status_setting", "status"), [(200, 200), (400, 400)], ids=["http-200", "http-400"])
def test_a_bad_refresh_token_answers_invalid_code(zoho, status_setting, status):
    zoho.settings(oauth_error_status=status_setting)
    answer = zoho.token("eu", grant_type="refresh_token", refresh_token="1000.dead.token")
    assert (answer.status_code, answer.json()) == (status, {"error": "invalid_code"})


def test_wrong_dc_refresh_bad_client_and_single_dc_clients(zoho, grant):
    assert zoho.refresh(grant, location="us").json() == {"error": "invalid_code"}
    assert zoho.token(
        "eu", grant_type="refresh_token", refresh_token=grant["refresh_token"], client_secret="x"
    ).json() == {"error": "invalid_client"}
    zoho.admin(
        "POST",
        "/apps",
        {"client_id": "one-dc", "client_secret": "s", "redirect_uris": [REDIRECT], "multi_dc": False},
        201,
    )
    one_dc = zoho.token(
        "eu", grant_type="refresh_token", refresh_token="x", client_id="one-dc", client_secret="s"
    )
    assert one_dc.json() == {"error": "invalid_client"}


def test_revoke_kills_the_refresh_token_and_its_access_tokens(zoho, grant):
    answer = requests.post(
        f"{zoho.url}/eu/accounts/oauth/v2/token/revoke", params={"token": grant["refresh_token"]}, timeout=10
    )
    assert answer.status_code == 200
    assert zoho.refresh(grant).json() == {"error": "invalid_code"}
    assert zoho.books("GET", "/organizations", grant["access_token"], org=None).status_code == 401
    logged = zoho.log("/token/revoke")[0]["query"]
    assert grant["refresh_token"] not in logged and "token=***" in logged


# --- the Books gate: scopes, organisations, limits (§2.3, §2.9) ---------------------------------------


def test_scopes_are_checked(zoho):
    reader = zoho.grant(scopes="ZohoBooks.settings.READ")["access_token"]
    assert zoho.books("GET", "/organizations", reader, org=None).status_code == 200
    refused = zoho.books("GET", "/chartofaccounts", reader)
    assert (refused.status_code, refused.json()["code"]) == (401, 57)


@pytest.mark.parametrize(
    "org", [None, "999", INDIA_ORG], ids=["missing", "unknown", "another-users-in-another-dc"]
)
def test_organization_id_must_be_the_users_in_this_data_centre(zoho, token, org):
    answer = zoho.books("GET", "/chartofaccounts", token, org=org)
    assert (answer.status_code, answer.json()["code"]) == (400, 2)


def test_a_deleted_organisation(zoho, token):
    zoho.admin("PATCH", f"/organisations/{ORG}", {"deleted": True})
    assert zoho.books("GET", "/chartofaccounts", token).status_code == 400
    orgs = zoho.books("GET", "/organizations", token, org=None).json()["organizations"]
    assert [o["organization_id"] for o in orgs] == [OTHER_ORG]


def test_per_minute_and_per_day_limits_per_organisation(zoho, token):
    zoho.settings(limit_per_minute=3)
    for _ in range(3):
        assert zoho.books("GET", "/chartofaccounts", token).status_code == 200
    limited = zoho.books("GET", "/chartofaccounts", token)
    assert (limited.status_code, limited.json()["code"]) == (429, 45)
    assert "Retry-After" not in limited.headers and "minute" in limited.json()["message"]
    assert zoho.books("GET", "/chartofaccounts", token, org=OTHER_ORG).status_code == 200  # per organisation
    zoho.advance(61)
    zoho.settings(limit_per_minute=100, limit_per_day=4, rate_limit_retry_after=True)
    assert (
        zoho.books("GET", "/chartofaccounts", token).status_code == 200
    )  # the 4th of the day (a 429 is not counted)
    daily = zoho.books("GET", "/journals", token)
    assert (
        daily.status_code == 429
        and "per day" in daily.json()["message"]
        and int(daily.headers["Retry-After"]) > 3600
    )


# --- chart of accounts (§2.4) -------------------------------------------------------------------------


def test_chart_of_accounts_pages_and_shows_inactive_accounts(zoho, token):
    zoho.settings(max_per_page=5)
    accounts, page = [], 1
    while True:
        answer = zoho.books("GET", "/chartofaccounts", token, params={"page": page}).json()
        assert answer["code"] == 0 and len(answer["chartofaccounts"]) <= 5
        accounts += answer["chartofaccounts"]
        if not answer["page_context"]["has_more_page"]:
            break
        page += 1
    assert page == 5 and len(accounts) == len(data.UAE_CHART)
    by_code = {a["account_code"]: a for a in accounts}
    assert by_code["1216"]["is_active"] is False and by_code["1215"]["account_id"] == acc("1215")
    assert by_code["4000"]["account_type"] == "income" and by_code["1020"]["currency_code"] == "USD"
    active = zoho.books(
        "GET", "/chartofaccounts", token, params={"filter_by": "AccountType.Active", "per_page": 200}
    )
    assert "1216" not in {a["account_code"] for a in active.json()["chartofaccounts"]}
    zoho.settings(chart_default_filter="AccountType.Active")
    default = zoho.books("GET", "/chartofaccounts", token, params={"page": 4}).json()
    assert default["page_context"]["applied_filter"] == "AccountType.Active"


def test_organisation_and_transaction_locks(zoho, token):
    (org,) = [
        o
        for o in zoho.books("GET", "/organizations", token, org=None).json()["organizations"]
        if o["organization_id"] == ORG
    ]
    assert (org["name"], org["currency_code"], org["time_zone"]) == (
        data.DEMO_ORGANIZATION_NAME,
        "AED",
        "Asia/Dubai",
    )
    locks = zoho.books("GET", "/transactionlocks", token).json()["transaction_locks"]
    assert {lock["transaction_lock_status"] for lock in locks} == {"disabled"}
    zoho.admin("PUT", f"/organisations/{ORG}/lock", {"module": "accountant", "date": "2026-10-31"})
    locks = {
        x["transaction_lock_module"]: x
        for x in zoho.books("GET", "/transactionlocks", token).json()["transaction_locks"]
    }
    assert (locks["accountant"]["transaction_lock_date"], locks["accountant"]["transaction_lock_status"]) == (
        "2026-10-31",
        "enabled",
    )
    assert locks["sales"]["transaction_lock_status"] == "disabled"


# --- journals (§2.5–2.7) ------------------------------------------------------------------------------


def test_the_documented_request_body_matches_the_schema():
    assert journal_problems(body()) == []
    assert journal_problems(
        {"journal_date": "2026-11-20", "line_items": [{"account_id": "1", "amount": -1}]}
    ) == [
        "line_items/0: 'debit_or_credit' is a required property",
        "line_items/0/amount: -1 is less than or equal to the minimum of 0",
    ]


def test_post_published_find_by_reference_and_read_by_id(zoho, token):
    created = zoho.books("POST", "/journals", token, json=body())
    answer = created.json()
    assert created.status_code == 201 and answer["code"] == 0
    journal = answer["journal"]
    assert (journal["status"], journal["reference_number"], journal["currency_code"]) == (
        "published",
        "MAMO-acme-20261120",
        "AED",
    )
    assert [(x["debit_or_credit"], str(x["amount"])) for x in journal["line_items"]] == [
        ("debit", "184.91"),
        ("debit", "8.64"),
        ("debit", "0.43"),
        ("credit", "184.74"),
        ("credit", "9.24"),
    ]
    assert journal["total"] == 193.98 and re.match(
        r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0400$", journal["created_time"]
    )
    zoho.books("POST", "/journals", token, json=body(reference="MAMO-acme-2026112", day="2026-11-21"))
    exact = zoho.books("GET", "/journals", token, params={"reference_number": "MAMO-acme-2026112"}).json()[
        "journals"
    ]
    starts = zoho.books(
        "GET", "/journals", token, params={"reference_number_startswith": "MAMO-acme-2026112"}
    ).json()
    assert [j["reference_number"] for j in exact] == ["MAMO-acme-2026112"]
    assert len(starts["journals"]) == 2 and "line_items" not in starts["journals"][0]
    one = zoho.books("GET", f"/journals/{journal['journal_id']}", token).json()["journal"]
    assert one["line_items"] == journal["line_items"]
    missing = zoho.books("GET", "/journals/460000000", token)
    assert missing.status_code == 404 and missing.json()["code"] != 0


def test_status_omitted_is_a_draft_that_publish_moves_to_the_books(zoho, token):
    draft = zoho.books("POST", "/journals", token, json=body(status=None)).json()["journal"]
    assert draft["status"] == "draft"
    answer = zoho.books("POST", f"/journals/{draft['journal_id']}/status/publish", token)
    assert answer.json() == {"code": 0, "message": "Journal has been published."}
    assert (
        zoho.books("GET", f"/journals/{draft['journal_id']}", token).json()["journal"]["status"]
        == "published"
    )
    zoho.settings(default_journal_status="published")
    assert (
        zoho.books("POST", "/journals", token, json=body(status=None)).json()["journal"]["status"]
        == "published"
    )


def test_duplicate_references_are_accepted_unless_set_otherwise(zoho, token):
    assert zoho.books("POST", "/journals", token, json=body()).status_code == 201
    assert zoho.books("POST", "/journals", token, json=body()).status_code == 201
    assert (
        len(
            zoho.books("GET", "/journals", token, params={"reference_number": "MAMO-acme-20261120"}).json()[
                "journals"
            ]
        )
        == 2
    )
    zoho.settings(duplicate_reference="reject")
    assert zoho.books("POST", "/journals", token, json=body()).status_code == 400


def _refused(zoho, token, payload) -> dict:
    answer = zoho.books("POST", "/journals", token, json=payload)
    assert answer.status_code == 400, answer.text
    result = answer.json()
    assert result["code"] != 0
    assert zoho.admin("GET", f"/organisations/{ORG}/journals")["journals"] == [], "nothing saved"
    return result


def test_unbalanced_journal_is_refused(zoho, token):
    lines = body()["line_items"][:4]
    assert "193.98" in _refused(zoho, token, body(lines=lines))["message"]


def test_inactive_deleted_and_unknown_accounts_are_refused(zoho, token):
    lines = body()["line_items"]
    inactive = [{**lines[0], "account_id": acc("1216")}] + lines[1:]
    assert "Payment gateway clearing (old)" in _refused(zoho, token, body(lines=inactive))["message"]
    zoho.admin("PATCH", f"/organisations/{ORG}/accounts/6110", {"is_active": False})
    assert "inactive" in _refused(zoho, token, body())["message"]
    zoho.admin("PATCH", f"/organisations/{ORG}/accounts/6110", {"deleted": True})
    assert _refused(zoho, token, body())["code"] == 2


@pytest.fixture
def full_access(zoho) -> str:
    return zoho.grant(scopes="ZohoBooks.accountants.ALL,ZohoBooks.settings.READ")["access_token"]


def test_a_locked_period_refuses_create_publish_update_and_delete(zoho, full_access):
    token = full_access
    draft = zoho.books("POST", "/journals", token, json=body(status="draft")).json()["journal"]
    published = zoho.books("POST", "/journals", token, json=body(reference="MAMO-acme-x")).json()["journal"]
    zoho.admin("PUT", f"/organisations/{ORG}/lock", {"module": "all", "date": "2026-11-20"})
    created = zoho.books("POST", "/journals", token, json=body(reference="new"))
    assert created.status_code == 400 and "30/10/2026" not in created.json()["message"]
    assert "20/11/2026" in created.json()["message"]
    for method, path, payload in (
        ("POST", f"/journals/{draft['journal_id']}/status/publish", None),
        ("PUT", f"/journals/{published['journal_id']}", body(day="2026-11-25")),
        ("DELETE", f"/journals/{published['journal_id']}", None),
    ):
        answer = zoho.books(method, path, token, json=payload)
        assert answer.status_code == 400 and answer.json()["code"] != 0, (method, path)
    assert (
        zoho.books("POST", "/journals", token, json=body(reference="later", day="2026-11-21")).status_code
        == 201
    )


def test_update_and_delete_need_their_scopes(zoho, token, full_access):
    journal = zoho.books("POST", "/journals", token, json=body()).json()["journal"]
    assert zoho.books("DELETE", f"/journals/{journal['journal_id']}", token).status_code == 401
    assert zoho.books("DELETE", f"/journals/{journal['journal_id']}", full_access).status_code == 200


def test_update_and_delete(zoho, full_access):
    token = full_access
    journal = zoho.books("POST", "/journals", token, json=body()).json()["journal"]
    changed = zoho.books(
        "PUT", f"/journals/{journal['journal_id']}", token, json=body(day="2026-11-22")
    ).json()
    assert (
        changed["journal"]["journal_date"] == "2026-11-22"
        and changed["journal"]["journal_id"] == journal["journal_id"]
    )
    back_to_draft = zoho.books("PUT", f"/journals/{journal['journal_id']}", token, json=body(status="draft"))
    assert back_to_draft.status_code == 400
    assert zoho.books("DELETE", f"/journals/{journal['journal_id']}", token).json()["code"] == 0
    assert zoho.books("GET", f"/journals/{journal['journal_id']}", token).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"journal_date": "20-11-2026", "line_items": body()["line_items"]},
        body() | {"journal_id": "1"},
        body(lines=[{"account_id": acc("1215"), "debit_or_credit": "left", "amount": 1}]),
        {"reference_number": "x"},
    ],
    ids=["bad-date", "read-only-field", "bad-side", "no-lines"],
)
def test_bodies_are_checked_against_the_schema(zoho, token, payload):
    answer = zoho.books("POST", "/journals", token, json=payload)
    assert (answer.status_code, answer.json()["code"]) == (400, 4)


# --- faults, admin, persistence ----------------------------------------------------------------------


def test_a_lost_response_still_creates_the_journal(zoho, token):
    zoho.admin(
        "POST", "/faults", {"kind": "lost_response", "method": "POST", "path": "/books/v3/journals"}, 201
    )
    with pytest.raises(requests.exceptions.RequestException):
        zoho.books("POST", "/journals", token, json=body())
    assert len(zoho.admin("GET", f"/organisations/{ORG}/journals")["journals"]) == 1
    assert zoho.log("/journals")[0]["fault"] == "lost_response"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [({"kind": "error", "status": 502}, 502, 5), ({"kind": "rate_limit", "problem": "day"}, 429, 45)],
    ids=["5xx", "429"],
)
def test_injected_faults(zoho, token, fault, status, code):
    zoho.admin("POST", "/faults", fault | {"path": "/books/v3/chartofaccounts"}, 201)
    answer = zoho.books("GET", "/chartofaccounts", token)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert zoho.books("GET", "/chartofaccounts", token).status_code == 200


def test_admin_organisations_accounts_and_users(zoho):
    zoho.admin("POST", "/users", {"email": "cfo@gulf.example", "location": "sa"}, 201)
    zoho.admin(
        "POST",
        "/organisations",
        {
            "organization_id": "70000000001",
            "name": "Gulf Trading",
            "location": "sa",
            "users": ["cfo@gulf.example"],
        },
        201,
    )
    zoho.admin(
        "POST",
        "/organisations/70000000001/accounts",
        {"account_name": "Mamo clearing 2", "account_code": "1217", "account_type": "other_current_asset"},
        201,
    )
    grant = zoho.grant(user="cfo@gulf.example")
    assert grant["api_domain"] == f"{zoho.url}/sa/api" and grant["organization_ids"] == ["70000000001"]
    chart = zoho.books(
        "GET", "/chartofaccounts", grant["access_token"], location="sa", org="70000000001"
    ).json()
    assert "1217" in {a["account_code"] for a in chart["chartofaccounts"]}
    assert zoho.admin("POST", "/organisations", {"name": "no id"}, expect=400)["error"]


def test_state_survives_a_pickle_round_trip():
    copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
    copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))
    state = ZohoSandbox()
    state.identity.issue_grant(
        data.DEFAULT_CLIENT_ID, data.DEMO_USER, ("ZohoBooks.settings.READ",), "http://x"
    )
    copy = pickle.loads(pickle.dumps(state))
    assert len(copy.identity.refresh_tokens) == 1 and set(copy.organisations) == set(state.organisations)
