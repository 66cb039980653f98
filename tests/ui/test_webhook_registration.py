"""Register with Mamo: an editor registers the company's receiver with the Mamo sandbox from the page,
and the sandbox's deliveries then reach Airflow's real receiver, once per event whatever the repeats.

The Mamo sandbox pings the receiver before it accepts the registration (MAMO_API.md §8.1) and then
POSTs each charge event from its delivery thread, over real sockets, to the api-server.
"""

from __future__ import annotations

import pytest
import requests
from helpers import company, page_of
from ui_stack import CIPHER

from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import set_webhook_secret, webhook_secret
from mamo_revenue.db.session import session_scope
from mamo_sandboxes.serving import free_port


def registered(stack, key: str) -> list[dict]:
    """The business's webhooks, as Mamo's API lists them."""
    answer = requests.get(f"{stack.mamo_url}/manage_api/v1/webhooks", headers={"Authorization": f"Bearer {key}"},
                          timeout=10)  # fmt: skip
    answer.raise_for_status()
    return answer.json()


def register(stack, session, cid: str, **kwargs) -> requests.Response:
    return session.post(page_of(stack, f"/companies/{cid}/webhook-register"), allow_redirects=False, timeout=90,
                        **kwargs)  # fmt: skip


def events(stack, cid: str):
    with session_scope(stack.engine) as session:
        rows = list(reversed(repo.list_webhook_events(session, cid)))
        return [(r.event_type, r.charge_id, r.cumulative_refund_minor, r.deliveries) for r in rows]


def activity(stack, cid: str) -> list[tuple[str, str]]:
    with session_scope(stack.engine) as session:
        return [(a.action, a.detail or "") for a in repo.list_activity(session, cid)]


@pytest.fixture
def repeat_three(stack):
    stack.mamo.update_settings(webhook_repeat=3)
    yield
    stack.mamo.update_settings(webhook_repeat=1)


def test_an_editor_registers_and_a_refund_reaches_the_receiver_once(stack, company_factory, repeat_three):
    cid, key, tag = company_factory()
    editor = stack.browser_session("editor")
    answer = register(stack, editor, cid)
    assert answer.status_code == 303, answer.text[:800]
    assert "notice=webhook_registered" in answer.headers["Location"]

    [hook] = registered(stack, key)
    assert hook["url"] == f"{stack.url}/mamo-webhooks/{cid}"
    assert {"charge.refund_initiated", "charge.refunded", "charge.succeeded"} <= set(hook["enabled_events"])
    row = company(stack, cid)
    secret = webhook_secret(row, CIPHER)
    assert row.mamo_webhook_id == hook["id"]
    assert hook["auth_header"] == secret and 32 <= len(secret) <= 50  # generated, strong, within Mamo's limit
    page = editor.get(page_of(stack, f"/companies/{cid}"), timeout=30).text
    assert hook["id"] in page and secret not in page
    assert [a for a, _ in activity(stack, cid)] == ["webhook_registered"]

    # a charge and its refund, made in the sandbox; each event is delivered three times
    (charge_id,) = stack.mamo.add_charges(tag, [{"amount": 50}])
    refund = requests.post(f"{stack.mamo_url}/manage_api/v1/charges/{charge_id}/refunds", json={"amount": 20},
                           headers={"Authorization": f"Bearer {key}"}, timeout=10)  # fmt: skip
    assert refund.status_code == 200, refund.text
    assert stack.mamo.deliverer.wait_idle(60)
    tried = [(a["event_type"], a["status"]) for a in stack.mamo.deliverer.attempts() if a["webhook_id"] == hook["id"]]
    assert tried == [("charge.succeeded", 200)] * 3 + [("charge.refund_initiated", 200)] * 3
    assert events(stack, cid) == [("charge.succeeded", charge_id, 0, 3), ("charge.refund_initiated", charge_id, 2000, 3)]
    with session_scope(stack.engine) as session:
        assert set(repo.refund_announcements(session, cid)) == {(charge_id, 2000)}
    for log in ("api-server", "scheduler"):
        assert secret not in stack.log(log)


@pytest.fixture
def bare_ping(stack):
    stack.mamo.update_settings(webhook_ping_authorization=False)
    yield
    stack.mamo.update_settings(webhook_ping_authorization=True)


def test_registration_works_when_mamos_ping_carries_no_authorization(stack, company_factory, bare_ping):
    cid, key, _ = company_factory()
    answer = register(stack, stack.browser_session("editor"), cid)
    assert answer.status_code == 303 and "notice=webhook_registered" in answer.headers["Location"], answer.text[:800]
    [hook] = registered(stack, key)
    assert company(stack, cid).mamo_webhook_id == hook["id"]
    assert events(stack, cid) == [], "a ping is answered, never recorded"


def test_registering_again_replaces_the_earlier_webhook(stack, company_factory):
    cid, key, _ = company_factory()
    editor = stack.browser_session("editor")
    # a secret saved by hand and a webhook registered by hand at Mamo for the same receiver
    secret = "hand-made-secret-" + cid
    with session_scope(stack.engine) as session:
        set_webhook_secret(session, cid, secret, CIPHER)
    by_hand = requests.post(f"{stack.mamo_url}/manage_api/v1/webhooks", headers={"Authorization": f"Bearer {key}"},
                            json={"url": f"{stack.url}/mamo-webhooks/{cid}", "enabled_events": ["charge.refunded"],
                                  "auth_header": secret}, timeout=30)  # fmt: skip
    assert by_hand.status_code == 201, by_hand.text

    assert register(stack, editor, cid).status_code == 303
    [first] = registered(stack, key)
    assert first["id"] != by_hand.json()["id"] and first["auth_header"] == secret  # the saved secret is kept
    assert register(stack, editor, cid).status_code == 303
    [second] = registered(stack, key)
    assert second["id"] != first["id"] and company(stack, cid).mamo_webhook_id == second["id"]
    details = [d for a, d in activity(stack, cid) if a == "webhook_registered"]
    assert f"replaced {first['id']}" in details[0] and f"replaced {by_hand.json()['id']}" in details[1]
    assert all(secret not in d for _, d in activity(stack, cid))


def test_a_viewer_may_not_register(stack, company_factory):
    cid, key, _ = company_factory()
    assert register(stack, stack.browser_session("viewer"), cid).status_code == 403
    assert register(stack, stack.api_session("viewer"), cid).status_code == 403
    assert registered(stack, key) == []
    row = company(stack, cid)
    assert row.webhook_secret_enc is None and row.mamo_webhook_id is None
    page = stack.browser_session("viewer").get(page_of(stack, f"/companies/{cid}"), timeout=30).text
    assert "webhook-register" not in page and "not yet" in page


def test_a_cross_site_post_with_the_editors_cookie_is_refused(stack, company_factory):
    cid, key, _ = company_factory()
    editor = stack.browser_session("editor")
    assert register(stack, editor, cid, headers={"Origin": "http://evil.example"}).status_code == 403
    assert registered(stack, key) == []


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_an_unreachable_receiver_is_explained(stack, company_factory, accept):
    """Airflow seen under an address Mamo cannot reach (here: a closed port as the Host): Mamo refuses."""
    cid, key, _ = company_factory()
    dead = f"127.0.0.1:{free_port()}"
    answer = register(stack, stack.api_session("editor"), cid, headers={"Host": dead, "Accept": accept})
    assert answer.status_code == 502, answer.text[:800]
    if accept == "application/json":
        body = answer.json()
        assert "Webhook is unreachable" in body["detail"]
        assert "MAMO_REVENUE_AIRFLOW_URL" in body["guidance"] and body["webhook_url"] == f"http://{dead}/mamo-webhooks/{cid}"
    else:
        assert "Webhook is unreachable" in answer.text and "MAMO_REVENUE_AIRFLOW_URL" in answer.text
    assert registered(stack, key) == []
    row = company(stack, cid)
    assert row.mamo_webhook_id is None and row.webhook_secret_enc is not None  # kept for the next try
    assert webhook_secret(row, CIPHER) not in answer.text
    assert [a for a, _ in activity(stack, cid)] == ["webhook_register_failed"]
