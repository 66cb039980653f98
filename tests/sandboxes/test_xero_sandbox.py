"""Contract of the Xero sandbox over real sockets: LEDGER_APIS.md §1 and the §6 defaults.

Responses are checked against the vendor's own OpenAPI files, independently of the sandbox's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from mamo_sandboxes import xero_data as data
from mamo_sandboxes.xero import DEFAULT_SPEC_PATH, create_app

SANDBOX_APP = create_app  # what the ``server`` fixture (conftest.py) serves
IDENTITY_SPEC = DEFAULT_SPEC_PATH.replace("xero_accounting.yaml", "xero-identity.yaml")
REDIRECT = data.DEFAULT_REDIRECT_URIS[0]
TENANT, OTHER_TENANT = data.DEMO_TENANT_ID, data.SECOND_TENANT_ID
API = "/api.xro/2.0"


# --- spec validation (the tests' own, from the vendor's files) ---------------------------------------


def _registry(path: str) -> tuple[str, Registry]:
    with open(path, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return f"urn:test:{path}", Registry().with_resource(f"urn:test:{path}", DRAFT4.create_resource(spec))


_REGISTRIES: dict[str, tuple[str, Registry]] = {}


def assert_matches_schema(instance, schema: str, path: str = DEFAULT_SPEC_PATH) -> None:
    if path not in _REGISTRIES:
        _REGISTRIES[path] = _registry(path)
    uri, registry = _REGISTRIES[path]
    validator = OAS30Validator({"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, f"{schema}: {errors}"


# --- the server and a small client ------------------------------------------------------------------


class Xero:
    """Test client: the admin API, the OAuth endpoints and the accounting API of one sandbox."""

    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, body=None, expect: int | None = None):
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def settings(self, **changes):
        self.admin("PATCH", "/settings", changes, expect=200)

    def advance(self, seconds: float):
        self.admin("POST", "/clock", {"advance_seconds": seconds}, expect=200)

    def grant(self, tenants=(TENANT,), scopes: str = data.DEFAULT_SCOPES) -> dict:
        return self.admin(
            "POST", "/grants", {"tenant_ids": list(tenants), "scopes": scopes}, expect=201
        ).json()

    def token(
        self, form: dict, auth=(data.DEFAULT_CLIENT_ID, data.DEFAULT_CLIENT_SECRET)
    ) -> requests.Response:
        return requests.post(f"{self.url}/identity/connect/token", data=form, auth=auth, timeout=10)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def api(
        self,
        method: str,
        path: str,
        access_token: str,
        tenant: str | None = TENANT,
        *,
        body=None,
        raw: bytes | None = None,
        headers: dict | None = None,
        **kwargs,
    ) -> requests.Response:
        hdrs = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if tenant:
            hdrs["xero-tenant-id"] = tenant
        if body is not None or raw is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs |= headers or {}
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        kwargs.setdefault("timeout", 10)
        return requests.request(method, f"{self.url}{API}{path}", headers=hdrs, data=content, **kwargs)

    def put_journal(
        self,
        token: str,
        journal: dict,
        *,
        summarize: bool = False,
        key: str | None = None,
        tenant: str = TENANT,
    ) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.api(
            "PUT",
            "/ManualJournals",
            token,
            tenant,
            body={"ManualJournals": [journal]},
            params={"summarizeErrors": str(summarize).lower()},
            headers=headers,
        )

    def journals(self, tenant: str = TENANT) -> list[dict]:
        return self.admin("GET", f"/organisations/{tenant}/journals", expect=200).json()["journals"]

    def requests_log(self, path_contains: str) -> list[dict]:
        return self.admin("GET", f"/requests?path_contains={path_contains}", expect=200).json()["requests"]


@pytest.fixture
def xero(server) -> Xero:
    client = Xero(server.url)
    client.admin("POST", "/reset", expect=200)
    return client


@pytest.fixture
def token(xero) -> str:
    return xero.grant()["access_token"]


def worked_example(**changes) -> dict:
    """The 2026-11-20 journal of ACCOUNTING.md's worked example, as LEDGER_APIS.md §1.5 sends it."""
    journal = {
        "Narration": "MAMO-acme-20261120 Mamo revenue 2026-11-20",
        "Date": "2026-11-20",
        "Status": "POSTED",
        "LineAmountTypes": "NoTax",
        "JournalLines": [
            {"LineAmount": 184.91, "AccountCode": "1215", "Description": "Mamo clearing 2026-11-20"},
            {"LineAmount": 8.64, "AccountCode": "6110", "Description": "Processing fees 2026-11-20"},
            {"LineAmount": 0.43, "AccountCode": "2200", "Description": "VAT recoverable on fees 2026-11-20"},
            {"LineAmount": -184.74, "AccountCode": "4000", "Description": "Sales 2026-11-20"},
            {"LineAmount": -9.24, "AccountCode": "2200", "Description": "VAT payable on sales 2026-11-20"},
        ],
    }
    return journal | changes


def ms(day: date) -> str:
    return f"/Date({int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)}+0000)/"


# --- OAuth: consent, code, tokens --------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"="
    ).decode()


def consent(xero: Xero, *, tenants=(TENANT,), decision="allow", **params) -> requests.Response:
    """The browser's part, scripted: GET the consent page, submit its form."""
    query = {
        "response_type": "code",
        "client_id": data.DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": data.DEFAULT_SCOPES,
        "state": "st-123",
    } | params
    page = requests.get(f"{xero.url}/identity/connect/authorize", params=query, timeout=10)
    assert page.status_code == 200, page.text
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    return requests.post(
        f"{xero.url}/identity/connect/authorize",
        timeout=10,
        allow_redirects=False,
        data={"txn": txn, "tenant": list(tenants), "decision": decision},
    )


def callback_query(response: requests.Response) -> dict:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_consent_page_lists_organisations_and_allow_redirects_with_code_and_state(xero):
    page = requests.get(
        f"{xero.url}/identity/connect/authorize",
        timeout=10,
        params={
            "response_type": "code",
            "client_id": data.DEFAULT_CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": data.DEFAULT_SCOPES,
            "state": "s",
        },
    )
    assert page.headers["content-type"].startswith("text/html")
    assert data.DEMO_TENANT_NAME in page.text and data.SECOND_TENANT_NAME in page.text
    assert 'value="allow"' in page.text and 'value="cancel"' in page.text

    query = callback_query(consent(xero, state="opaque/state+1"))
    assert query["state"] == "opaque/state+1"
    assert query["scope"] == data.DEFAULT_SCOPES
    answer = xero.token({"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT})
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert_matches_schema(tokens, "AccessToken", IDENTITY_SPEC)
    assert tokens["expires_in"] == 1800 and tokens["token_type"] == "Bearer"
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["aud"] == data.DEFAULT_CLIENT_ID and claims["email"] == data.SANDBOX_USER["email"]

    connections = requests.get(
        f"{xero.url}/connections", timeout=10, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert [c["tenantId"] for c in connections] == [TENANT]
    for connection in connections:
        assert_matches_schema(connection, "Connection", IDENTITY_SPEC)
    assert (
        connections[0]["tenantName"] == data.DEMO_TENANT_NAME
        and connections[0]["tenantType"] == "ORGANISATION"
    )


def test_connections_filter_by_auth_event(xero):
    first = xero.grant([TENANT])
    second = xero.grant([OTHER_TENANT])
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    everything = requests.get(f"{xero.url}/connections", headers=headers, timeout=10).json()
    assert {c["tenantId"] for c in everything} == {TENANT, OTHER_TENANT}
    only = requests.get(
        f"{xero.url}/connections", headers=headers, timeout=10, params={"authEventId": first["auth_event_id"]}
    ).json()
    assert [c["tenantId"] for c in only] == [TENANT]


def test_cancel_redirects_with_access_denied_and_state(xero):
    query = callback_query(consent(xero, decision="cancel", state="keep-me"))
    assert query == {"error": "access_denied", "state": "keep-me"}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"client_id": "nobody"}, id="unknown-client"),
        pytest.param({"redirect_uri": "https://evil.example/callback"}, id="unregistered-redirect"),
    ],
)
def test_authorize_never_redirects_to_an_unverified_client(xero, params):
    query = {
        "response_type": "code",
        "client_id": data.DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": data.DEFAULT_SCOPES,
        "state": "s",
    } | params
    response = requests.get(
        f"{xero.url}/identity/connect/authorize", params=query, allow_redirects=False, timeout=10
    )
    assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit-flow"),
        pytest.param(
            {"scope": "openid offline_access accounting.transactions"}, "invalid_scope", id="legacy-scope"
        ),
        pytest.param({"scope": "openid nonsense"}, "invalid_scope", id="unknown-scope"),
        pytest.param(
            {"code_challenge": "abc", "code_challenge_method": "plain"}, "invalid_request", id="pkce-plain"
        ),
    ],
)
def test_authorize_sends_request_errors_back_to_the_client(xero, params, error):
    query = {
        "response_type": "code",
        "client_id": data.DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": data.DEFAULT_SCOPES,
        "state": "s",
    } | params
    response = requests.get(
        f"{xero.url}/identity/connect/authorize", params=query, allow_redirects=False, timeout=10
    )
    back = callback_query(response)
    assert back["error"] == error and back["state"] == "s"


@pytest.mark.parametrize(
    ("verifier", "ok"),
    [
        pytest.param("right", True, id="right-verifier"),
        pytest.param("wrong", False, id="wrong-verifier"),
        pytest.param(None, False, id="missing-verifier"),
    ],
)
def test_pkce_s256(xero, verifier, ok):
    right, challenge = pkce()
    query = callback_query(consent(xero, code_challenge=challenge, code_challenge_method="S256"))
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT}
    if verifier:
        form["code_verifier"] = right if verifier == "right" else pkce()[0]
    answer = xero.token(form)
    assert (answer.status_code, answer.json().get("error")) == ((200, None) if ok else (400, "invalid_grant"))


def test_pkce_only_app_needs_no_secret(xero):
    xero.admin("POST", "/apps", {"client_id": "PUBLICAPP", "redirect_uris": [REDIRECT]}, expect=201)
    verifier, challenge = pkce()
    query = callback_query(
        consent(xero, client_id="PUBLICAPP", code_challenge=challenge, code_challenge_method="S256")
    )
    answer = xero.token(
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "client_id": "PUBLICAPP",
            "code_verifier": verifier,
        },
        auth=None,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("problem", ["reused", "expired", "other-redirect-uri", "other-client"])
def test_authorization_code_is_single_use_short_lived_and_bound(xero, problem):
    xero.admin(
        "POST",
        "/apps",
        {"client_id": "OTHER", "client_secret": "s3", "redirect_uris": [REDIRECT]},
        expect=201,
    )
    code = callback_query(consent(xero))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    auth = (data.DEFAULT_CLIENT_ID, data.DEFAULT_CLIENT_SECRET)
    if problem == "reused":
        assert xero.token(form).status_code == 200
    elif problem == "expired":
        xero.advance(301)
    elif problem == "other-redirect-uri":
        form["redirect_uri"] = data.DEFAULT_REDIRECT_URIS[1]
    else:
        auth = ("OTHER", "s3")
    answer = xero.token(form, auth=auth)
    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"auth": (data.DEFAULT_CLIENT_ID, "wrong-secret")}, "invalid_client", id="wrong-secret"),
        pytest.param({"auth": None}, "invalid_client", id="no-client-auth"),
    ],
)
def test_token_endpoint_authenticates_the_client(xero, kwargs, error):
    refresh = xero.grant()["refresh_token"]
    answer = xero.token({"grant_type": "refresh_token", "refresh_token": refresh}, **kwargs)
    assert (answer.status_code, answer.json()["error"]) == (400, error)


def test_token_endpoint_wants_a_form(xero):
    refresh = xero.grant()["refresh_token"]
    answer = requests.post(
        f"{xero.url}/identity/connect/token",
        timeout=10,
        json={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(data.DEFAULT_CLIENT_ID, data.DEFAULT_CLIENT_SECRET),
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_access_token_lives_30_minutes_then_401_token_expired(xero, token):
    xero.advance(1799)
    assert xero.api("GET", "/Organisation", token).status_code == 200
    xero.advance(2)
    response = xero.api("GET", "/Organisation", token)
    assert response.status_code == 401
    body = response.json()
    assert {k: body[k] for k in ("Type", "Title", "Status")} == {
        "Type": None,
        "Title": "Unauthorized",
        "Status": 401,
    }
    assert re.fullmatch(r"TokenExpired: token expired at \d\d/\d\d/\d{4} \d\d:\d\d:\d\d", body["Detail"])
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}


def test_refresh_rotates_and_the_old_token_works_for_a_grace_window_after_first_use(xero):
    r0 = xero.grant()["refresh_token"]
    first = xero.refresh(r0)
    assert first.status_code == 200
    r1 = first.json()["refresh_token"]
    assert r1 != r0 and first.json()["expires_in"] == 1800
    xero.advance(29 * 60)
    again = xero.refresh(r0)  # e.g. the first answer was lost: the old token works again, once more
    assert again.status_code == 200
    r2 = again.json()["refresh_token"]
    assert r2 not in (r0, r1)
    xero.advance(2 * 60)  # 31 minutes after r0's first use
    dead = xero.refresh(r0)
    assert (dead.status_code, dead.json()) == (400, {"error": "invalid_grant"})
    assert xero.refresh(r1).status_code == 200  # each new token stays valid until used
    assert xero.refresh(r2).status_code == 200


def test_single_use_setting_kills_a_second_refresh_with_the_same_token(xero):
    xero.settings(refresh_reuse="single_use")
    r0 = xero.grant()["refresh_token"]
    assert xero.refresh(r0).status_code == 200
    assert xero.refresh(r0).json() == {"error": "invalid_grant"}


def test_refresh_token_unused_for_60_days_expires(xero):
    used_in_time, idle = xero.grant()["refresh_token"], xero.grant()["refresh_token"]
    xero.advance(60 * 86400 - 60)
    assert xero.refresh(used_in_time).status_code == 200
    xero.advance(120)
    assert xero.refresh(idle).json() == {"error": "invalid_grant"}


def test_revocation_kills_the_grant_and_its_connections(xero):
    grant = xero.grant()
    response = requests.post(
        f"{xero.url}/identity/connect/revocation",
        data={"token": grant["refresh_token"]},
        auth=(data.DEFAULT_CLIENT_ID, data.DEFAULT_CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200
    assert xero.refresh(grant["refresh_token"]).json() == {"error": "invalid_grant"}
    assert xero.api("GET", "/Organisation", grant["access_token"]).status_code == 401


def test_deleting_a_connection_removes_the_tenant(xero, token):
    headers = {"Authorization": f"Bearer {token}"}
    (connection,) = requests.get(f"{xero.url}/connections", headers=headers, timeout=10).json()
    assert (
        requests.delete(f"{xero.url}/connections/{connection['id']}", headers=headers, timeout=10).status_code
        == 204
    )
    assert (
        requests.delete(f"{xero.url}/connections/{connection['id']}", headers=headers, timeout=10).status_code
        == 404
    )
    response = xero.api("GET", "/Organisation", token)
    assert response.status_code == 403 and response.json()["Detail"] == "AuthenticationUnsuccessful"


# --- the accounting API's gate -----------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["missing", "unknown", "not-consented"])
def test_tenant_header_is_required_and_must_be_covered_by_the_consent(xero, token, tenant):
    xero.admin(
        "POST",
        "/organisations",
        {"tenant_id": "c0ffee00-0000-4000-8000-000000000001", "name": "Elsewhere"},
        expect=201,
    )
    header = {
        "missing": None,
        "unknown": "c0ffee00-0000-4000-8000-00000000dead",
        "not-consented": "c0ffee00-0000-4000-8000-000000000001",
    }[tenant]
    response = xero.api("GET", "/Organisation", token, tenant=header)
    assert response.status_code == 403
    assert xero.api("GET", "/Organisation", token).status_code == 200


def test_bearer_token_is_required(xero):
    response = requests.get(
        f"{xero.url}{API}/Accounts",
        timeout=10,
        headers={"xero-tenant-id": TENANT, "Accept": "application/json"},
    )
    assert response.status_code == 401


def test_accounts_need_the_settings_scope(xero):
    token = xero.grant(scopes="offline_access accounting.manualjournals")["access_token"]
    assert xero.api("GET", "/Accounts", token).status_code == 401
    assert xero.api("GET", "/ManualJournals", token).status_code == 200


def test_json_must_be_asked_for(xero, token):
    response = xero.api("GET", "/Organisation", token, headers={"Accept": "application/xml"})
    assert response.status_code == 406


# --- responses as the spec describes them -----------------------------------------------------------


def test_responses_validate_against_the_accounting_spec(xero, token):
    accounts = xero.api("GET", "/Accounts", token).json()
    assert_matches_schema(accounts, "Accounts")
    one = xero.api("GET", f"/Accounts/{accounts['Accounts'][0]['AccountID']}", token).json()
    assert_matches_schema(one, "Accounts")
    xero.admin("PATCH", f"/organisations/{TENANT}", {"period_lock_date": "2026-10-31"}, expect=200)
    assert_matches_schema(xero.api("GET", "/Organisation", token).json(), "Organisations")

    put = xero.put_journal(token, worked_example(Url="https://revenue.example/periods/20261120"))
    assert_matches_schema(put.json(), "ManualJournals")
    journal_id = put.json()["ManualJournals"][0]["ManualJournalID"]
    assert_matches_schema(xero.api("GET", "/ManualJournals", token).json(), "ManualJournals")
    assert_matches_schema(
        xero.api("GET", "/ManualJournals", token, params={"page": 1}).json(), "ManualJournals"
    )
    assert_matches_schema(xero.api("GET", f"/ManualJournals/{journal_id}", token).json(), "ManualJournals")
    warned = xero.put_journal(
        token,
        worked_example(
            JournalLines=[{"LineAmount": 1, "AccountCode": "9999"}, {"LineAmount": -1, "AccountCode": "4000"}]
        ),
    )
    assert_matches_schema(warned.json(), "ManualJournals")
    with_errors = xero.put_journal(token, worked_example(Narration=""))
    assert_matches_schema(with_errors.json(), "ManualJournals")
    error = xero.put_journal(token, worked_example(Narration=""), summarize=True)
    assert error.status_code == 400
    assert_matches_schema(error.json(), "Error")


def test_accounts_filter_by_status_and_archived_accounts_show_as_archived(xero, token):
    everything = xero.api("GET", "/Accounts", token).json()["Accounts"]
    assert {a["Code"]: a["Status"] for a in everything}["1216"] == "ARCHIVED"
    active = xero.api("GET", "/Accounts", token, params={"where": 'Status=="ACTIVE"'}).json()["Accounts"]
    assert "1216" not in {a["Code"] for a in active} and {"1215", "2200", "4000", "4010", "6110"} <= {
        a["Code"] for a in active
    }
    by_code = {a["Code"]: a for a in active}
    assert (by_code["1215"]["Type"], by_code["4000"]["Type"], by_code["2200"]["Type"]) == (
        "CURRENT",
        "REVENUE",
        "CURRLIAB",
    )
    assert by_code["1215"]["AccountID"] == data.account_id(TENANT, "1215")


def test_organisation_lock_dates_appear_only_when_set(xero, token):
    org = xero.api("GET", "/Organisation", token).json()["Organisations"][0]
    assert (org["BaseCurrency"], org["Timezone"]) == ("AED", "ARABIANSTANDARDTIME")
    assert "PeriodLockDate" not in org and "EndOfYearLockDate" not in org
    xero.admin(
        "PATCH",
        f"/organisations/{TENANT}",
        {"period_lock_date": "2026-10-31", "end_of_year_lock_date": "2025-12-31"},
        expect=200,
    )
    org = xero.api("GET", "/Organisation", token).json()["Organisations"][0]
    assert org["PeriodLockDate"] == ms(date(2026, 10, 31)) == "/Date(1793404800000+0000)/"
    assert org["EndOfYearLockDate"] == ms(date(2025, 12, 31))


# --- posting manual journals (§1.5, §1.6) ------------------------------------------------------------


def test_worked_example_is_saved_as_sent(xero, token):
    response = xero.put_journal(token, worked_example(), key="MAMO-acme-20261120")
    assert response.status_code == 200
    assert '"LineAmount": 184.91' in response.text and '"LineAmount": -184.74' in response.text
    (journal,) = response.json()["ManualJournals"]
    assert journal["Status"] == "POSTED" and journal["Date"] == ms(date(2026, 11, 20))
    assert "Warnings" not in journal and "ValidationErrors" not in journal
    assert [(line["AccountCode"], line["LineAmount"]) for line in journal["JournalLines"]] == [
        ("1215", 184.91),
        ("6110", 8.64),
        ("2200", 0.43),
        ("4000", -184.74),
        ("2200", -9.24),
    ]
    assert all(
        line["AccountID"] == data.account_id(TENANT, line["AccountCode"]) for line in journal["JournalLines"]
    )
    assert [j["ManualJournalID"] for j in xero.journals()] == [journal["ManualJournalID"]]


REFUSALS = [
    pytest.param(
        worked_example(JournalLines=worked_example()["JournalLines"][:4]),
        "The total debits (193.98) must equal total credits (-184.74)",
        id="unbalanced",
    ),
    pytest.param(
        worked_example(JournalLines=[{"LineAmount": 0, "AccountCode": "1215"}]),
        "A manual journal must have at least two journal lines",
        id="one-line",
    ),
    pytest.param(worked_example(Narration="  "), "Narration is required", id="blank-narration"),
    pytest.param(
        {k: v for k, v in worked_example().items() if k != "Narration"},
        "Narration is required",
        id="no-narration",
    ),
    pytest.param(
        worked_example(Date="2026-06-30"),
        "The document date cannot be before the end of year lock date, currently set at 30-Jun-2026",
        id="end-of-year-lock",
    ),
    pytest.param(
        worked_example(Date="2026-10-31"),
        "The document date cannot be before the period lock date, currently set at 31-Oct-2026",
        id="period-lock-on-the-day",
    ),
    pytest.param(
        worked_example(Status="VOIDED"),
        "A manual journal can only be created with Status DRAFT or POSTED",
        id="created-voided",
    ),
]


@pytest.mark.parametrize(("journal", "message"), REFUSALS)
def test_refusals_per_journal_with_summarize_errors_false(xero, token, journal, message):
    xero.admin(
        "PATCH",
        f"/organisations/{TENANT}",
        {"period_lock_date": "2026-10-31", "end_of_year_lock_date": "2026-06-30"},
        expect=200,
    )
    response = xero.put_journal(token, journal, summarize=False)
    assert response.status_code == 200
    (echo,) = response.json()["ManualJournals"]
    assert message in [e["Message"] for e in echo["ValidationErrors"]]
    assert "ManualJournalID" not in echo
    assert xero.journals() == []


@pytest.mark.parametrize(("journal", "message"), REFUSALS)
def test_refusals_as_one_error_with_summarize_errors_true(xero, token, journal, message):
    xero.admin(
        "PATCH",
        f"/organisations/{TENANT}",
        {"period_lock_date": "2026-10-31", "end_of_year_lock_date": "2026-06-30"},
        expect=200,
    )
    response = xero.put_journal(token, journal, summarize=True)
    assert response.status_code == 400
    body = response.json()
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10,
        "ValidationException",
        "A validation exception occurred",
    )
    assert message in [e["Message"] for e in body["Elements"][0]["ValidationErrors"]]
    assert xero.journals() == []


def test_the_day_after_the_lock_date_is_open(xero, token):
    xero.admin("PATCH", f"/organisations/{TENANT}", {"period_lock_date": "2026-11-19"}, expect=200)
    assert "ManualJournalID" in xero.put_journal(token, worked_example()).json()["ManualJournals"][0]


def test_unknown_account_code_is_dropped_with_a_warning_and_the_journal_saved(xero, token):
    journal = worked_example(
        JournalLines=[
            {"LineAmount": 5, "AccountCode": "476", "Description": "typo"},
            {"LineAmount": -5, "AccountCode": "4000"},
        ]
    )
    (echo,) = xero.put_journal(token, journal).json()["ManualJournals"]
    assert echo["Warnings"] == [
        {"Message": "Account code '476' has been removed as it does not match a recognised account."}
    ]
    assert "AccountCode" not in echo["JournalLines"][0] and echo["ManualJournalID"]
    assert len(xero.journals()) == 1


def test_unknown_account_code_rejected_when_so_configured(xero, token):
    xero.settings(unknown_account="reject")
    journal = worked_example(
        JournalLines=[{"LineAmount": 5, "AccountCode": "476"}, {"LineAmount": -5, "AccountCode": "4000"}]
    )
    (echo,) = xero.put_journal(token, journal).json()["ManualJournals"]
    assert echo["ValidationErrors"] == [
        {"Message": "Account code '476' does not match a recognised account."}
    ]
    assert xero.journals() == []


@pytest.mark.parametrize("summarize", [False, True])
def test_archived_account_is_a_400_validation_exception(xero, token, summarize):
    journal = worked_example(
        JournalLines=[{"LineAmount": 5, "AccountCode": "1216"}, {"LineAmount": -5, "AccountCode": "4000"}]
    )
    response = xero.put_journal(token, journal, summarize=summarize)
    assert response.status_code == 400
    body = response.json()
    assert body["Type"] == "ValidationException"
    assert body["Elements"][0]["ValidationErrors"] == [{"Message": "Account code '1216' has been archived"}]
    assert xero.journals() == []


def test_account_archived_through_the_admin_api(xero, token):
    xero.admin("PATCH", f"/organisations/{TENANT}/accounts/6110", {"Status": "ARCHIVED"}, expect=200)
    response = xero.put_journal(token, worked_example())
    assert response.status_code == 400
    assert "Account code '6110' has been archived" in response.text


def test_status_omitted_saves_a_draft(xero, token):
    journal = {k: v for k, v in worked_example().items() if k != "Status"}
    assert xero.put_journal(token, journal).json()["ManualJournals"][0]["Status"] == "DRAFT"


def test_each_line_is_rounded_to_two_decimals_before_balancing(xero, token):
    journal = worked_example(
        JournalLines=[
            {"LineAmount": 10.004, "AccountCode": "1215"},
            {"LineAmount": -10.00, "AccountCode": "4000"},
        ]
    )
    (echo,) = xero.put_journal(token, journal).json()["ManualJournals"]
    assert "ValidationErrors" not in echo
    assert echo["JournalLines"][0]["LineAmount"] == 10.0


@pytest.mark.parametrize(
    ("line_amount_types", "error"),
    [
        pytest.param(
            None, "The total debits (100.00) must equal total credits (-105.00)", id="omitted-means-exclusive"
        ),
        pytest.param(
            "Exclusive", "The total debits (100.00) must equal total credits (-105.00)", id="exclusive"
        ),
        pytest.param("Inclusive", None, id="inclusive"),
        pytest.param("NoTax", None, id="notax"),
    ],
)
def test_line_amount_types_change_the_arithmetic(xero, token, line_amount_types, error):
    journal = worked_example(
        JournalLines=[{"LineAmount": 100, "AccountCode": "1215"}, {"LineAmount": -100, "AccountCode": "4000"}]
    )  # 4000 defaults to 5% VAT
    journal.pop("LineAmountTypes")
    if line_amount_types:
        journal["LineAmountTypes"] = line_amount_types
    (echo,) = xero.put_journal(token, journal).json()["ManualJournals"]
    assert [e["Message"] for e in echo.get("ValidationErrors", [])] == ([error] if error else [])


def test_notax_default_setting(xero, token):
    xero.settings(default_line_amount_types="NoTax")
    journal = {k: v for k, v in worked_example().items() if k != "LineAmountTypes"}
    assert "ValidationErrors" not in xero.put_journal(token, journal).json()["ManualJournals"][0]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"ManualJournals": [{"Narration": "x", "JournalLines": [{"LineAmount": "abc"}]}]}',
            id="amount-text",
        ),
        pytest.param(b'{"ManualJournals": [{"Narration": "x", "Status": "BOGUS"}]}', id="status-enum"),
        pytest.param(b'{"ManualJournals": "nope"}', id="not-an-array"),
        pytest.param(b'{"Narration": "a single journal"}', id="no-envelope"),
        pytest.param(b"{not json", id="not-json"),
    ],
)
def test_bodies_against_the_spec_schema(xero, token, raw):
    response = xero.api("PUT", "/ManualJournals", token, raw=raw)
    assert response.status_code == 400
    assert response.json()["Type"] == "PostDataInvalidException"
    assert xero.journals() == []


def test_summarize_errors_false_saves_the_valid_journals_of_a_batch(xero, token):
    body = {
        "ManualJournals": [
            worked_example(),
            worked_example(
                Narration="MAMO-acme-20261121 x", JournalLines=worked_example()["JournalLines"][:4]
            ),
        ]
    }
    response = xero.api("PUT", "/ManualJournals", token, body=body)
    good, bad = response.json()["ManualJournals"]
    assert "ManualJournalID" in good and "ValidationErrors" in bad
    assert len(xero.journals()) == 1


def test_void_a_posted_journal_and_delete_a_draft(xero, token):
    posted = xero.put_journal(token, worked_example()).json()["ManualJournals"][0]["ManualJournalID"]
    draft = xero.put_journal(token, worked_example(Status="DRAFT")).json()["ManualJournals"][0][
        "ManualJournalID"
    ]

    def set_status(journal_id: str, status: str) -> dict:
        return xero.api(
            "POST", f"/ManualJournals/{journal_id}", token, body={"ManualJournals": [{"Status": status}]}
        ).json()["ManualJournals"][0]

    assert "ValidationErrors" in set_status(posted, "DELETED")
    assert set_status(posted, "VOIDED")["Status"] == "VOIDED"
    assert set_status(draft, "DELETED")["Status"] == "DELETED"
    assert {j["Status"] for j in xero.journals()} == {"VOIDED", "DELETED"}


def test_post_creates_and_then_updates_a_draft(xero, token):
    draft = xero.api(
        "POST", "/ManualJournals", token, body={"ManualJournals": [worked_example(Status="DRAFT")]}
    )
    journal_id = draft.json()["ManualJournals"][0]["ManualJournalID"]
    update = {"ManualJournalID": journal_id, "Status": "POSTED", "Narration": "MAMO-acme-20261120 corrected"}
    updated = xero.api("POST", "/ManualJournals", token, body={"ManualJournals": [update]})
    assert updated.status_code == 200 and "ValidationErrors" not in updated.json()["ManualJournals"][0]
    (stored,) = xero.api("GET", f"/ManualJournals/{journal_id}", token).json()["ManualJournals"]
    assert (stored["Status"], stored["Narration"], len(stored["JournalLines"])) == (
        "POSTED",
        "MAMO-acme-20261120 corrected",
        5,
    )
    edit_posted = xero.api(
        "POST",
        f"/ManualJournals/{journal_id}",
        token,
        body={"ManualJournals": [{"Narration": "MAMO-acme-20261120 again"}]},
    )
    assert "cannot be edited" in edit_posted.json()["ManualJournals"][0]["ValidationErrors"][0]["Message"]
    missing = xero.api(
        "POST",
        "/ManualJournals/6d1f0000-0000-4000-8000-000000000000",
        token,
        body={"ManualJournals": [{"Status": "VOIDED"}]},
    )
    assert missing.status_code == 404
    assert xero.api("GET", "/ManualJournals/6d1f0000-0000-4000-8000-000000000000", token).status_code == 404


def test_if_modified_since(xero, token):
    xero.put_journal(token, worked_example(Narration="MAMO-acme-20261119 old"))
    xero.advance(60)
    since = xero.admin("GET", "/clock").json()["now"]
    xero.advance(60)
    xero.put_journal(token, worked_example())
    recent = xero.api("GET", "/ManualJournals", token, headers={"If-Modified-Since": since}).json()
    assert [j["Narration"] for j in recent["ManualJournals"]] == [
        "MAMO-acme-20261120 Mamo revenue 2026-11-20"
    ]


def test_voiding_inside_a_locked_period_is_refused(xero, token):
    posted = xero.put_journal(token, worked_example()).json()["ManualJournals"][0]["ManualJournalID"]
    xero.admin("PATCH", f"/organisations/{TENANT}", {"period_lock_date": "2026-11-30"}, expect=200)
    echo = xero.api(
        "POST", f"/ManualJournals/{posted}", token, body={"ManualJournals": [{"Status": "VOIDED"}]}
    ).json()["ManualJournals"][0]
    assert echo["ValidationErrors"][0]["Message"].startswith(
        "The document date cannot be before the period lock date"
    )


def test_where_page_and_lines(xero, token):
    xero.put_journal(token, worked_example())
    xero.put_journal(token, worked_example(Narration="MAMO-acme-2026112 older"))
    xero.put_journal(token, worked_example(Narration="Accrual MAMO-acme-20261120", Status="DRAFT"))

    def narrations(**params) -> list[str]:
        response = xero.api("GET", "/ManualJournals", token, params=params)
        assert response.status_code == 200, response.text
        return sorted(j["Narration"] for j in response.json()["ManualJournals"])

    assert narrations(where='Narration.StartsWith("MAMO-acme-20261120")') == [
        "MAMO-acme-20261120 Mamo revenue 2026-11-20"
    ]
    assert narrations(where='Narration.StartsWith("MAMO-acme-2026112")') == [  # a prefix, not a reference
        "MAMO-acme-2026112 older",
        "MAMO-acme-20261120 Mamo revenue 2026-11-20",
    ]
    assert len(narrations(where='Narration.Contains("MAMO-acme-20261120")')) == 2
    assert narrations(where='Status=="DRAFT"') == ["Accrual MAMO-acme-20261120"]
    assert narrations(where='Status == "POSTED" AND Narration.Contains("older")') == [
        "MAMO-acme-2026112 older"
    ]

    unpaged = xero.api("GET", "/ManualJournals", token).json()
    assert all(j["JournalLines"] == [] for j in unpaged["ManualJournals"]) and "pagination" not in unpaged
    paged = xero.api("GET", "/ManualJournals", token, params={"page": 1, "pageSize": 2}).json()
    assert paged["pagination"] == {"page": 1, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert all(len(j["JournalLines"]) == 5 for j in paged["ManualJournals"])
    bad = xero.api("GET", "/ManualJournals", token, params={"where": "Narration LIKE 'x'"})
    assert (bad.status_code, bad.json()["Type"]) == (400, "QueryParseException")


# --- rate limits (§1.9) ------------------------------------------------------------------------------


def test_every_call_carries_the_remaining_limits(xero, token):
    first = xero.api("GET", "/Organisation", token).headers
    second = xero.api("GET", "/Accounts", token).headers
    assert (first["X-MinLimit-Remaining"], second["X-MinLimit-Remaining"]) == ("59", "58")
    assert (first["X-DayLimit-Remaining"], second["X-DayLimit-Remaining"]) == ("4999", "4998")
    assert int(first["X-AppMinLimit-Remaining"]) == 9999


def test_minute_limit_answers_429_until_the_window_moves(xero, token):
    xero.settings(limit_per_minute=2)
    assert [xero.api("GET", "/Organisation", token).status_code for _ in range(2)] == [200, 200]
    limited = xero.api("GET", "/Organisation", token)
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Problem"] == "Minute"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-MinLimit-Remaining"] == "0"
    assert xero.api("GET", "/Organisation", token, tenant=None).status_code == 403  # unrelated: no tenant
    xero.advance(61)
    assert xero.api("GET", "/Organisation", token).status_code == 200


def test_limits_are_per_tenant(xero):
    token = xero.grant([TENANT, OTHER_TENANT])["access_token"]
    xero.settings(limit_per_minute=1)
    assert xero.api("GET", "/Organisation", token).status_code == 200
    assert xero.api("GET", "/Organisation", token).status_code == 429
    assert xero.api("GET", "/Organisation", token, tenant=OTHER_TENANT).status_code == 200


def test_daily_limit_says_daily_with_a_long_retry_after(xero, token):
    xero.settings(limit_per_day=2)
    xero.api("GET", "/Organisation", token)
    xero.api("GET", "/Organisation", token)
    limited = xero.api("GET", "/Organisation", token)
    assert (limited.status_code, limited.headers["X-Rate-Limit-Problem"]) == (429, "Daily")
    assert int(limited.headers["Retry-After"]) > 80000


def test_concurrent_calls_over_the_limit_get_429(xero, token):
    xero.settings(limit_concurrent=1)
    xero.admin(
        "POST",
        "/faults",
        {"kind": "delay", "method": "GET", "path": "/Organisation", "delay_seconds": 0.5},
        expect=201,
    )
    statuses: list[int] = []
    slow = threading.Thread(
        target=lambda: statuses.append(xero.api("GET", "/Organisation", token).status_code)
    )
    slow.start()
    threading.Event().wait(0.15)
    quick = xero.api("GET", "/Accounts", token)
    slow.join()
    assert (statuses, quick.status_code, quick.headers["X-Rate-Limit-Problem"]) == ([200], 429, "Concurrent")


# --- idempotency (§1.10) -----------------------------------------------------------------------------


def test_a_repeated_key_returns_the_first_answer_and_posts_once(xero, token):
    first = xero.put_journal(token, worked_example(), key="MAMO-acme-20261120")
    again = xero.put_journal(token, worked_example(), key="MAMO-acme-20261120")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert len(xero.journals()) == 1
    different = xero.put_journal(
        token, worked_example(Narration="MAMO-acme-20261120 changed"), key="MAMO-acme-20261120"
    )
    assert different.content == first.content  # default: the key alone decides
    assert len(xero.journals()) == 1


def test_a_repeated_key_with_another_body_is_refused_when_so_configured(xero, token):
    xero.settings(idempotency="reject_different_body")
    xero.put_journal(token, worked_example(), key="K1")
    assert xero.put_journal(token, worked_example(), key="K1").status_code == 200
    different = xero.put_journal(token, worked_example(Narration="MAMO-acme-20261120 changed"), key="K1")
    assert different.status_code == 400 and "different request" in different.json()["Message"]
    assert len(xero.journals()) == 1


def test_idempotency_keys_are_at_most_128_characters(xero, token):
    assert xero.put_journal(token, worked_example(), key="k" * 129).status_code == 400
    assert xero.put_journal(token, worked_example(), key="k" * 128).status_code == 200


# --- faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        pytest.param("drop", requests.exceptions.ChunkedEncodingError, id="connection-dropped"),
        pytest.param("timeout", requests.exceptions.ReadTimeout, id="timeout"),
        pytest.param("500", None, id="http-500"),
    ],
)
def test_lost_response_writes_but_the_client_never_hears(xero, token, mode, failure):
    xero.admin(
        "POST",
        "/faults",
        {
            "kind": "lost_response",
            "method": "PUT",
            "path": "/ManualJournals",
            "mode": mode,
            "delay_seconds": 2,
        },
        expect=201,
    )
    if failure:
        with pytest.raises(failure):
            xero.api(
                "PUT",
                "/ManualJournals",
                token,
                body={"ManualJournals": [worked_example()]},
                headers={"Idempotency-Key": "MAMO-acme-20261120"},
                timeout=1,
            )
    else:
        assert xero.put_journal(token, worked_example(), key="MAMO-acme-20261120").status_code == 500
    (saved,) = xero.journals()
    retry = xero.put_journal(token, worked_example(), key="MAMO-acme-20261120")
    assert retry.json()["ManualJournals"][0]["ManualJournalID"] == saved["ManualJournalID"]
    assert len(xero.journals()) == 1


def test_error_and_rate_limit_faults_answer_without_processing(xero, token):
    xero.settings(
        faults=[
            {"kind": "error", "method": "PUT", "path": "/ManualJournals", "status": 503},
            {
                "kind": "rate_limit",
                "method": "PUT",
                "path": "/ManualJournals",
                "retry_after": 3,
                "problem": "Minute",
            },
        ]
    )
    assert xero.put_journal(token, worked_example()).status_code == 503
    limited = xero.put_journal(token, worked_example())
    assert (limited.status_code, limited.headers["Retry-After"], limited.headers["X-Rate-Limit-Problem"]) == (
        429,
        "3",
        "Minute",
    )
    assert xero.journals() == []
    assert xero.put_journal(token, worked_example()).status_code == 200


# --- admin ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"no_such_setting": 1},
        {"limit_per_minute": "sixty"},
        {"idempotency": "forget"},
        {"faults": [{"kind": "earthquake"}]},
    ],
)
def test_settings_refuse_unknown_names_and_bad_values(xero, changes):
    assert xero.admin("PATCH", "/settings", changes).status_code == 400


def test_reset_restores_a_fresh_sandbox(xero, token):
    xero.settings(limit_per_minute=1)
    xero.put_journal(token, worked_example())
    xero.advance(3600)
    xero.admin("POST", "/reset", expect=200)
    assert xero.journals() == []
    assert xero.admin("GET", "/settings").json()["limit_per_minute"] == 60
    assert (
        abs(
            datetime.fromisoformat(xero.admin("GET", "/clock").json()["now"]) - datetime.now(UTC)
        ).total_seconds()
        < 60
    )
    assert xero.api("GET", "/Organisation", token).status_code == 401  # tokens are gone too


def test_create_an_organisation_with_its_own_chart(xero):
    created = xero.admin(
        "POST",
        "/organisations",
        {
            "name": "Beta LLC",
            "base_currency": "USD",
            "end_of_year_lock_date": "2025-12-31",
            "accounts": [
                {"Code": "100", "Name": "Cash", "Type": "BANK"},
                {"Code": "400", "Name": "Sales", "Type": "SALES"},
            ],
        },
        expect=201,
    ).json()
    token = xero.grant([created["tenant_id"]])["access_token"]
    org = xero.api("GET", "/Organisation", token, tenant=created["tenant_id"]).json()["Organisations"][0]
    assert (org["Name"], org["BaseCurrency"], org["EndOfYearLockDate"]) == (
        "Beta LLC",
        "USD",
        ms(date(2025, 12, 31)),
    )
    accounts = xero.api("GET", "/Accounts", token, tenant=created["tenant_id"]).json()["Accounts"]
    assert [(a["Code"], a["Class"]) for a in accounts] == [("100", "ASSET"), ("400", "REVENUE")]
    assert xero.admin("GET", "/health", expect=200).json()["ok"] is True
