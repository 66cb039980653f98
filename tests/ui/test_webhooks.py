"""The Mamo webhook receiver: no Airflow login, the company's secret instead (constant-time compare);
pings answered; events recorded once however often they arrive; nothing ever booked."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from ui_stack import CIPHER

from mamo_revenue import webhooks
from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import set_webhook_secret
from mamo_revenue.db.session import session_scope


@pytest.fixture
def hooked(stack, company_factory):
    """A company with a webhook secret; (company id, secret, Mamo business tag)."""
    cid, _, tag = company_factory()
    secret = "whsec-" + uuid.uuid4().hex
    with session_scope(stack.engine) as session:
        set_webhook_secret(session, cid, secret, CIPHER)
    return cid, secret, tag


def deliver(stack, company_id: str, body, authorization: str | None):
    headers = {"Content-Type": "application/json", "User-Agent": "Faraday v1.10.4"}
    if authorization is not None:
        headers["Authorization"] = authorization
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{stack.url}/mamo-webhooks/{company_id}", data=data, headers=headers, timeout=30)


def event_body(stack, tag: str, charge_id: str, event_type: str) -> bytes:
    """The charge as Mamo's webhook renders it (the sandbox's webhook form of the charge)."""
    answer = requests.get(f"{stack.mamo_url}/_sandbox/businesses/{tag}/charges/{charge_id}",
                          params={"kind": "webhook", "event_type": event_type}, timeout=10)
    answer.raise_for_status()
    return answer.content


def events(stack, company_id: str):
    with session_scope(stack.engine) as session:
        rows = repo.list_webhook_events(session, company_id)
        for row in rows:
            session.expunge(row)
        return rows


def test_a_ping_is_answered(stack, hooked):
    cid, secret, _ = hooked
    answer = deliver(stack, cid, {"ping": "pong"}, secret)
    assert answer.status_code == 200 and answer.json() == {"ping": "pong"}
    assert events(stack, cid) == []


@pytest.mark.parametrize("authorization", [None, "", "wrong-secret-of-the-same-size-xxxxxxxxxx", "Bearer x"],
                         ids=["missing", "empty", "wrong", "other-scheme"])
def test_a_delivery_without_the_companys_secret_is_refused(stack, hooked, authorization):
    cid, _, _ = hooked
    answer = deliver(stack, cid, {"id": "MPB-CHRG-X1", "event_type": "charge.refunded", "refund_amount": 5},
                     authorization)
    assert answer.status_code == 401
    assert events(stack, cid) == []


def test_the_registration_ping_is_answered_without_the_header_but_not_with_a_wrong_one(stack, hooked):
    """Mamo may or may not send the auth_header with its registration ping (undocumented)."""
    cid, _, _ = hooked
    bare = requests.post(f"{stack.url}/mamo-webhooks/{cid}", data=b'{"ping": "pong"}', timeout=30,
                         headers={"Content-Type": "application/json"})
    assert bare.status_code == 200 and bare.json() == {"ping": "pong"}
    assert deliver(stack, cid, {"ping": "pong"}, "wrong-secret-of-the-same-size-xxxxxxxxxx").status_code == 401
    assert events(stack, cid) == []
    for other in ("no_such_company", "Not-A-Slug"):  # the same answer whatever the id: it reveals nothing
        assert deliver(stack, other, {"ping": "pong"}, None).json() == {"ping": "pong"}


def test_a_company_without_a_secret_or_unknown_refuses_everything(stack, company_factory):
    cid = company_factory()[0]
    assert deliver(stack, cid, {"ping": "pong"}, "anything-at-all-long-enough").status_code == 401
    assert deliver(stack, "no_such_company", {"ping": "pong"}, "anything").status_code == 401
    assert deliver(stack, "Not-A-Slug", {"ping": "pong"}, "anything").status_code == 401


def test_an_airflow_login_does_not_replace_the_secret(stack, hooked):
    cid, _, _ = hooked
    answer = requests.post(f"{stack.url}/mamo-webhooks/{cid}", json={"ping": "pong"}, timeout=30,
                           headers={"Authorization": f"Bearer {stack.token('admin')}"})
    assert answer.status_code == 401


def test_events_are_recorded_once_and_each_refund_step_is_its_own_event(stack, hooked):
    cid, secret, tag = hooked
    [charge_id, _] = stack.mamo.generate(tag, seed=3, count=2, status_weights={"captured": 1},
                                         currency_weights={"AED": 1})
    succeeded = event_body(stack, tag, charge_id, "charge.succeeded")
    assert deliver(stack, cid, succeeded, secret).json() == {"received": True, "duplicate": False}
    assert deliver(stack, cid, succeeded, secret).json() == {"received": True, "duplicate": True}

    requests.post(f"{stack.mamo_url}/_sandbox/businesses/{tag}/charges/{charge_id}/refunds", json={"amount": 1},
                  timeout=10).raise_for_status()
    first_refund = event_body(stack, tag, charge_id, "charge.refund_initiated")
    assert deliver(stack, cid, first_refund, secret).json()["duplicate"] is False
    # the payment.* family mirrors charge.*: the same event, however it is named
    mirrored = json.loads(first_refund) | {"event_type": "payment.refund_initiated"}
    assert deliver(stack, cid, mirrored, secret).json()["duplicate"] is True
    requests.post(f"{stack.mamo_url}/_sandbox/businesses/{tag}/charges/{charge_id}/refunds", json={"amount": 1},
                  timeout=10).raise_for_status()
    second_refund = event_body(stack, tag, charge_id, "charge.refund_initiated")
    assert deliver(stack, cid, second_refund, secret).json()["duplicate"] is False

    rows = events(stack, cid)
    assert [(r.event_type, r.cumulative_refund_minor, r.deliveries) for r in reversed(rows)] == [
        ("charge.succeeded", 0, 2), ("charge.refund_initiated", 100, 2), ("charge.refund_initiated", 200, 1)]
    with session_scope(stack.engine) as session:
        dated = repo.refund_announcements(session, cid)
    assert set(dated) == {(charge_id, 100), (charge_id, 200)}
    assert not repo.events_for_period(stack.engine, cid, "20261120").shape[0]  # nothing booked from a webhook
    page = stack.browser_session("viewer").get(f"{stack.url}/revenue-accounting/companies/{cid}", timeout=30).text
    assert charge_id in page and "charge.refund_initiated" in page


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"event_type": "charge.succeeded"}',
                                  b'{"id": "MPB-CHRG-1", "event_type": "charge.refunded", "refund_amount": "1.234"}'],
                         ids=["not-json", "not-an-object", "no-charge-id", "bad-amount"])
def test_a_body_that_is_no_charge_event_is_refused_and_not_recorded(stack, hooked, body):
    cid, secret, _ = hooked
    assert deliver(stack, cid, body, secret).status_code == 400
    assert events(stack, cid) == []


def test_the_secret_comparison_is_constant_time_and_total():
    assert webhooks.authorised("s3cret-value-long", "s3cret-value-long")
    assert not webhooks.authorised("s3cret-value-lonG", "s3cret-value-long")
    assert not webhooks.authorised(None, "s3cret-value-long")
    assert not webhooks.authorised("anything", None)
    assert not webhooks.authorised("", "")
    assert webhooks.canonical_event_type("payment.refunded") == "charge.refunded"
