"""Who may do what: every route of the page needs an Airflow login; a viewer reads but never writes; a
cross-site form post is refused even with a valid cookie."""

from __future__ import annotations

import pytest
import requests
from helpers import days_ago, page_of

PERIOD = "2026-11-20"
#: Every route of the page's app, with what a request needs to reach the handler.
READS = [
    ("GET", "/"),
    ("GET", "/static/style.css"),
    ("GET", "/companies/{cid}"),
    ("GET", "/api/companies"),
    ("GET", "/api/companies/{cid}/history"),
]
WRITES = [
    ("GET", "/companies/new"),
    ("GET", "/companies/{cid}/settings"),
    ("GET", "/companies/{cid}/mapping"),
    ("GET", "/companies/{cid}/connect"),
    ("GET", "/companies/{cid}/confirm/sync?period=" + PERIOD),
    ("GET", "/companies/{cid}/confirm/disconnect"),
    ("GET", "/api/companies/{cid}/accounts"),
    ("POST", "/companies"),
    ("POST", "/companies/{cid}/settings"),
    ("POST", "/companies/{cid}/mapping"),
    ("POST", "/companies/{cid}/webhook-secret"),
    ("POST", "/companies/{cid}/webhook-register"),
    ("POST", "/companies/{cid}/connect"),
    ("POST", "/oauth/choose"),
    ("POST", "/companies/{cid}/sync"),
    ("POST", "/companies/{cid}/backfill"),
    ("POST", "/companies/{cid}/resync"),
    ("POST", "/companies/{cid}/disconnect"),
]
CALLBACK = ("GET", "/oauth/callback?state=forged&code=forged")
ROUTES = READS + WRITES + [CALLBACK]


def _id(route) -> str:
    return f"{route[0]} {route[1].split('?')[0]}"


@pytest.fixture(scope="module")
def cid(stack, request):
    factory = request.getfixturevalue("company_factory")
    return factory()[0]


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_every_route_refuses_a_caller_without_an_airflow_login(stack, cid, route):
    method, path = route
    answer = requests.request(method, page_of(stack, path.format(cid=cid)), headers={"Origin": stack.url},
                              data={"period": PERIOD}, allow_redirects=False, timeout=30)
    assert answer.status_code == 401, answer.text[:300]


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_a_forged_token_is_refused(stack, cid, route):
    method, path = route
    answer = requests.request(method, page_of(stack, path.format(cid=cid)), allow_redirects=False, timeout=30,
                              headers={"Authorization": "Bearer not.a.token", "Accept": "application/json"})
    assert answer.status_code in (401, 403)


def test_a_browser_without_a_login_is_sent_to_airflows_login_and_back(stack, cid):
    answer = requests.get(page_of(stack, f"/companies/{cid}"), headers={"Accept": "text/html"},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith("/auth/login") and f"%2Frevenue-accounting%2Fcompanies%2F{cid}" in location


def test_a_callback_without_a_login_goes_to_the_login_without_its_code_or_state(stack):
    """The ledger sends the browser back after the Airflow login expired: the way to the login page (and
    Airflow's access log) must not carry the one-time code or the state."""
    answer = requests.get(page_of(stack, "/oauth/callback?code=CODE-a1b2c3d4e5&state=STATE-f6a7b8c9d0"),
                          headers={"Accept": "text/html"}, allow_redirects=False, timeout=30)
    assert answer.status_code == 303
    assert "/oauth/callback" in requests.utils.unquote(answer.headers["Location"])
    for value in ("CODE-a1b2c3d4e5", "STATE-f6a7b8c9d0"):
        assert value not in requests.utils.unquote(answer.headers["Location"])
        assert value not in stack.log("api-server")


@pytest.mark.parametrize("route", READS, ids=_id)
def test_a_viewer_reads_the_page_and_the_history(stack, cid, route):
    method, path = route
    answer = stack.browser_session("viewer").request(method, page_of(stack, path.format(cid=cid)), timeout=30)
    assert answer.status_code == 200, answer.text[:300]


@pytest.mark.parametrize("route", WRITES + [CALLBACK], ids=_id)
@pytest.mark.parametrize("client", ["cookie", "bearer"])
def test_a_viewer_may_not_change_anything(stack, cid, route, client):
    method, path = route
    session = stack.browser_session("viewer") if client == "cookie" else stack.api_session("viewer")
    answer = session.request(method, page_of(stack, path.format(cid=cid)), data={"period": PERIOD},
                             allow_redirects=False, timeout=30)
    if route == CALLBACK:
        assert answer.status_code == 400  # a state the viewer never started is refused before anything else
    else:
        assert answer.status_code == 403, answer.text[:300]


def test_the_viewers_page_offers_no_change(stack, cid):
    page = stack.browser_session("viewer").get(page_of(stack, f"/companies/{cid}"), timeout=30).text
    for control in ("/connect", "/mapping", "/settings", "/confirm/", "webhook-secret", "webhook-register",
                    "Add a company"):
        assert control not in page
    assert "Sync history" in page
    overview = stack.browser_session("viewer").get(page_of(stack, "/"), timeout=30).text
    assert "Add a company" not in overview


def test_an_editor_of_role_user_may_change_a_company(stack, cid):
    answer = stack.browser_session("editor").get(page_of(stack, f"/companies/{cid}/settings"), timeout=30)
    assert answer.status_code == 200


@pytest.mark.parametrize(("origin", "expected"), [
    ("http://evil.example", 403),
    (None, 403),
    ("same", 303),
], ids=["other-site", "no-origin", "same-origin"])
def test_a_change_with_the_ui_cookie_must_come_from_the_page_itself(stack, company_factory, origin, expected):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    session.headers.pop("Origin")
    headers = {"Origin": stack.url if origin == "same" else origin} if origin else {}
    form = {"name": "Renamed", "timezone": "Asia/Dubai", "frequency": "daily", "base_currency": "AED",
            "vat_policy": "none", "first_period": days_ago(3), "status": "paused"}
    answer = session.post(page_of(stack, f"/companies/{cid}/settings"), data=form, headers=headers,
                          allow_redirects=False, timeout=30)
    assert answer.status_code == expected, answer.text[:300]


def test_an_api_client_with_a_bearer_token_needs_no_origin(stack, company_factory):
    cid = company_factory()[0]
    form = {"name": "Via the API", "timezone": "Asia/Dubai", "frequency": "daily", "base_currency": "AED",
            "vat_policy": "none", "first_period": days_ago(3), "status": "paused"}
    answer = stack.api_session("admin").post(page_of(stack, f"/companies/{cid}/settings"), data=form,
                                             allow_redirects=False, timeout=30)
    assert answer.status_code == 303
