"""Contract of the Mamo sandbox over real sockets: MAMO_API.md §2–§7, §9 and every §12 setting.

Shapes are checked against the key lists of MAMO_API.md's Example 1 (list item) and Example 2
(webhook body), copied here from the document, not from the sandbox's code.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from fastapi import FastAPI, Request
from fastapi.responses import Response

from mamo_sandboxes import mamo_data
from mamo_sandboxes.mamo import DEMO_API_KEY, MamoSandbox, build_demo_state, create_app
from mamo_sandboxes.serving import serving

KEY, OTHER_KEY = "sk-8d88fac2-d3cf-4060-9eaf-ce6b61434c39", "sk_other_business"
API = "/manage_api/v1"

#: MAMO_API.md Example 1, one item of GET /charges, in order
LIST_KEYS = [
    "status", "id", "amount", "amount_currency", "refund_amount", "refund_status", "billing_descriptor",
    "custom_data", "created_date", "subscription_id", "next_payment_date", "settlement_amount",
    "settlement_currency", "settlement_date", "customer_details", "payment_method", "settlement_fee",
    "settlement_vat", "payment_link_id", "payment_link_url", "error_code", "error_message",
]  # fmt: skip
#: MAMO_API.md Example 2, the charge.succeeded webhook body, in order
WEBHOOK_KEYS = [
    "status", "id", "amount", "amount_currency", "refund_amount", "refund_status", "custom_data",
    "created_date", "subscription_id", "settlement_amount", "settlement_currency", "settlement_date",
    "customer_details", "payment_method", "settlement_fee", "settlement_vat", "payment_link_id",
    "payment_link_url", "external_id", "error_code", "error_message", "next_payment_date", "event_type",
]  # fmt: skip
#: GET /charges/{id}: Example 2's shape without event_type, plus the schema's billing_descriptor (§4)
SINGLE_KEYS = [k for k in WEBHOOK_KEYS if k != "event_type"]
SINGLE_KEYS.insert(SINGLE_KEYS.index("custom_data"), "billing_descriptor")
META_KEYS = {"page", "per_page", "total_pages", "next_page", "prev_page", "from", "to", "total_count"}
CREATED = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")

#: ACCOUNTING.md's worked example, as explicit charges
WORKED_EXAMPLE = [
    {"id": "c1", "status": "captured", "amount": Decimal("105.00"), "amount_currency": "AED",
     "created_date": "2026-11-20-09-15-00", "settlement_amount": Decimal("100.75"),
     "settlement_fee": "AED 4.05", "settlement_vat": "AED 0.20"},
    {"id": "c2", "status": "captured", "amount": Decimal("52.50"), "amount_currency": "AED",
     "created_date": "2026-11-20-23-59-59", "settlement_amount": Decimal("49.85"),
     "settlement_fee": "AED 2.52", "settlement_vat": "AED 0.13"},
    {"id": "c3", "status": "failed", "amount": 40, "amount_currency": "AED",
     "created_date": "2026-11-20-10-00-00", "settlement_amount": None, "settlement_fee": None,
     "settlement_vat": None, "settlement_date": None},
    {"id": "c4", "status": "captured", "amount": 10, "amount_currency": "USD",
     "created_date": "2026-11-20-12-00-00", "settlement_amount": Decimal("34.31"),
     "settlement_fee": "AED 2.07", "settlement_vat": "AED 0.10"},
    {"id": "c5", "status": "captured", "amount": 21, "amount_currency": "AED",
     "created_date": "2026-11-21-00-00-01", "settlement_amount": Decimal("19.31"),
     "settlement_fee": "AED 1.61", "settlement_vat": "AED 0.08"},
]  # fmt: skip


def _number(value):
    """Decimals go on the wire as JSON numbers (two-decimal values survive a float exactly)."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value))


class Api:
    """The served sandbox: Mamo's API with a key, and the admin API."""

    def __init__(self, state: MamoSandbox, url: str):
        self.state, self.url = state, url
        self.http = requests.Session()

    def get(self, path: str, key: str | None = KEY, **params) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return self.http.get(self.url + API + path, headers=headers, params=params)

    def post(self, path: str, body: dict, key: str = KEY) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        return self.http.post(self.url + API + path, headers=headers, data=json.dumps(body, default=_number))

    def page(self, page: int = 1, per_page: int | None = None, **params) -> dict:
        if per_page is not None:
            params["per_page"] = per_page
        response = self.get("/charges", page=page, **params)
        assert response.status_code == 200, response.text
        return json.loads(response.content, parse_float=Decimal)

    def all_items(self, per_page: int = 100) -> list[dict]:
        items, page = [], 1
        while True:
            body = self.page(page, per_page)
            items += body["data"]
            if body["pagination_meta"]["next_page"] is None:
                return items
            page += 1

    def admin(self, method: str, path: str, body=None) -> requests.Response:
        return self.http.request(method, self.url + "/_sandbox" + path, json=body)

    def settings(self, **changes) -> dict:
        response = self.admin("PATCH", "/settings", changes)
        assert response.status_code == 200, response.text
        return response.json()

    def add(self, *charges: dict, tag: str = "acme") -> list[str]:
        body = json.loads(json.dumps({"charges": list(charges)}, default=_number))
        response = self.admin("POST", f"/businesses/{tag}/charges", body)
        assert response.status_code == 201, response.text
        return response.json()["ids"]

    def generate(self, count: int, seed: int = 7, tag: str = "acme", **extra) -> None:
        response = self.admin("POST", f"/businesses/{tag}/generate", {"seed": seed, "count": count, **extra})
        assert response.status_code == 201, response.text

    def charge(self, charge_id: str, kind: str = "single") -> dict:
        response = self.admin("GET", f"/businesses/acme/charges/{charge_id}?kind={kind}")
        assert response.status_code == 200, response.text
        return json.loads(response.content, parse_float=Decimal)


@pytest.fixture(scope="module")
def served():
    state = MamoSandbox()
    with serving(create_app(state)) as server:
        yield state, server.url


@pytest.fixture
def api(served) -> Api:
    state, url = served
    state.reset()
    state.add_business(KEY, "Acme Trading LLC", business_tag="acme")
    return Api(state, url)


def _now_local(api: Api) -> datetime:
    return api.state.clock.now().astimezone(mamo_data.ZoneClock("Asia/Dubai").zone).replace(tzinfo=None, microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H-%M-%S")


# --- authentication, /me, errors ------------------------------------------------------------------


def test_me_returns_the_business_behind_the_key(api):
    response = api.get("/me")
    assert response.status_code == 200
    assert response.json() == {"business_name": "Acme Trading LLC", "business_tag": "acme",
                               "website": "https://acme.example.ae"}  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "wrong-key", "no-scheme", "basic-scheme"],
)
@pytest.mark.parametrize("path", ["/me", "/charges", "/charges/MPB-CHRG-0000000000"])
def test_a_missing_or_wrong_key_is_403_unauthorized(api, headers, path):
    response = requests.get(api.url + API + path, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"messages": ["Unauthorized"], "error_code": "UNAUTHORIZED"}


def test_unknown_charge_is_404_record_not_found(api):
    response = api.get("/charges/MPB-CHRG-D65B203ABD")
    assert response.status_code == 404
    assert response.json() == {"messages": ["Charge record was not found"], "error_code": "RECORD_NOT_FOUND"}


def test_unknown_path_is_404_not_found(api):
    response = api.get("/charge")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_each_key_sees_only_its_own_business(api):
    api.state.add_business(OTHER_KEY, "Other Co", business_tag="other")
    acme = api.add({}, {})
    other = api.add({}, tag="other")
    assert {c["id"] for c in api.page(per_page=100)["data"]} == set(acme)
    assert [c["id"] for c in json.loads(api.get("/charges", key=OTHER_KEY).content)["data"]] == other
    assert api.get(f"/charges/{other[0]}").status_code == 404
    assert api.get("/me", key=OTHER_KEY).json()["business_tag"] == "other"


# --- list envelope and shapes ---------------------------------------------------------------------


def test_list_envelope_and_pagination_meta(api):
    api.generate(47)
    first = api.page(1, 10)
    assert list(first) == ["data", "pagination_meta"]
    assert first["pagination_meta"] == {"page": 1, "per_page": 10, "total_pages": 5, "next_page": 2,
                                        "prev_page": None, "from": 1, "to": 10, "total_count": 47}  # fmt: skip
    last = api.page(5, 10)
    assert len(last["data"]) == 7
    assert last["pagination_meta"] == {"page": 5, "per_page": 10, "total_pages": 5, "next_page": None,
                                       "prev_page": 4, "from": 41, "to": 47, "total_count": 47}  # fmt: skip


def test_shapes_follow_examples_1_and_2(api):
    api.generate(30)
    item = api.page(1, 1)["data"][0]
    assert list(item) == LIST_KEYS
    assert list(api.charge(item["id"], "single")) == SINGLE_KEYS
    assert list(json.loads(api.get(f"/charges/{item['id']}").content)) == SINGLE_KEYS
    assert list(api.charge(item["id"], "webhook")) == WEBHOOK_KEYS
    assert set(item["customer_details"]) == {"name", "email", "phone_number", "comment"}
    assert set(item["payment_method"]) == {"type", "card_holder_name", "card_last4", "origin"}
    assert list(api.charge(item["id"], "webhook")["payment_method"])[0] == "card_id"


def test_a_single_charge_has_no_envelope_and_matches_the_list_item(api):
    ids = api.add({"amount": Decimal("33.99")})
    single = json.loads(api.get(f"/charges/{ids[0]}").content, parse_float=Decimal)
    item = api.page()["data"][0]
    assert single["id"] == item["id"] == ids[0]
    assert single["amount"] == item["amount"] == Decimal("33.99")
    assert item["refund_amount"] == "0.0" and single["refund_amount"] == 0  # §4: the types differ


def test_payments_is_an_alias_of_charges(api):
    api.generate(25)
    assert api.get("/payments", page=2).content == api.get("/charges", page=2).content
    charge_id = api.page()["data"][0]["id"]
    assert api.get(f"/payments/{charge_id}").content == api.get(f"/charges/{charge_id}").content
    api.settings(serve_payments=False)
    assert api.get("/payments").status_code == 404


def test_undocumented_query_parameters_are_ignored(api):
    api.generate(30)
    assert api.get("/charges", status="failed", created_from="2026-01-01").content == api.get("/charges").content


# --- §12 rows 1–5: order and paging ------------------------------------------------------------


def _created_keys(items: list[dict]) -> list[tuple[str, str]]:
    return [(c["created_date"], c["id"]) for c in items]


def test_order_newest_first_by_default_ties_by_id(api):
    moment = _stamp(_now_local(api) - timedelta(days=1))
    api.add(*({"id": f"tie-{n}", "created_date": moment} for n in "bca"))
    api.generate(200)
    keys = _created_keys(api.all_items())
    assert keys == sorted(keys, reverse=True)


def test_order_oldest_first(api):
    api.generate(200)
    api.settings(order="oldest_first")
    keys = _created_keys(api.all_items())
    assert keys == sorted(keys)


def test_order_unordered_is_a_stable_permutation(api):
    api.generate(200)
    newest = api.all_items()
    api.settings(order="unordered")
    first, second = api.all_items(), api.all_items()
    assert [c["id"] for c in first] == [c["id"] for c in second]
    assert sorted(c["id"] for c in first) == sorted(c["id"] for c in newest)
    keys = _created_keys(first)
    assert keys != sorted(keys) and keys != sorted(keys, reverse=True)


@pytest.mark.parametrize("default, expected", [(10, 10), (25, 25)], ids=["10", "25"])
def test_default_per_page(api, default, expected):
    api.generate(60)
    api.settings(default_per_page=default)
    body = api.page()
    assert len(body["data"]) == expected == body["pagination_meta"]["per_page"]


def test_per_page_above_the_maximum_is_cut(api):
    api.generate(130)
    body = api.page(1, 500)
    assert len(body["data"]) == 100 and body["pagination_meta"]["per_page"] == 100
    api.settings(max_per_page=25)
    assert len(api.page(1, 100)["data"]) == 25


def test_per_page_above_the_maximum_can_be_refused(api):
    api.generate(30)
    api.settings(per_page_over_max="reject", max_per_page=25)
    response = api.get("/charges", per_page=26)
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert response.json()["messages"] == ["See errors"]
    assert isinstance(response.json()["errors"], list)
    assert len(api.page(1, 25)["data"]) == 25


def test_page_past_the_end_is_empty_by_default(api):
    api.generate(15)
    body = api.page(3, 10)
    assert body["data"] == []
    assert body["pagination_meta"]["next_page"] is None


def test_page_past_the_end_can_be_404(api):
    api.generate(15)
    api.settings(page_past_end="not_found")
    assert api.get("/charges", page=2, per_page=10).status_code == 200
    assert api.get("/charges", page=3, per_page=10).status_code == 404


def test_page_one_of_an_empty_list_is_never_404(api):
    api.settings(page_past_end="not_found")
    assert api.page()["data"] == []


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "1.5"])
def test_bad_page_is_page_one_or_422(api, bad):
    api.generate(15)
    first = api.get("/charges").content
    assert api.get("/charges", page=bad).content == first
    api.settings(bad_page="reject")
    response = api.get("/charges", page=bad)
    assert response.status_code == 422 and response.json()["error_code"] == "VALIDATION_ERROR"


# --- §12 rows 7–13, 20, 21, 28: how a charge is written -------------------------------------------


def test_created_date_is_dubai_wall_clock_or_utc(api):
    (charge_id,) = api.add({"created_date": "2026-11-20-02-30-00"})
    assert api.charge(charge_id)["created_date"] == "2026-11-20-02-30-00"
    api.settings(created_date_zone="UTC")
    assert api.charge(charge_id)["created_date"] == "2026-11-19-22-30-00"
    assert CREATED.match(api.page()["data"][0]["created_date"])


def test_settlement_date_formats(api):
    (charge_id,) = api.add({"created_date": "2026-11-16-14-38-53"})  # Monday; T+5 business days
    assert api.charge(charge_id, "list")["settlement_date"] == "23/11/2026"
    assert api.charge(charge_id, "single")["settlement_date"] == "23/11/2026"
    assert api.charge(charge_id, "webhook")["settlement_date"] == "2026-11-23"  # as in Example 2
    api.settings(settlement_date_format="iso")
    assert {api.charge(charge_id, k)["settlement_date"] for k in ("list", "single", "webhook")} == {"2026-11-23"}
    api.settings(settlement_date_format="dmy")
    assert {api.charge(charge_id, k)["settlement_date"] for k in ("list", "single", "webhook")} == {"23/11/2026"}


def test_settlement_date_is_t_plus_5_business_days_skipping_weekends_and_holidays(api):
    cases = {
        "2026-11-16-10-00-00": "23/11/2026",  # Monday → next Monday
        "2026-11-20-23-59-59": "27/11/2026",  # Friday → Friday
        "2026-11-28-00-00-00": "08/12/2026",  # Saturday: Mon 30 Nov, Tue 1, (2, 3 National Day), Fri 4, Mon 7, Tue 8
    }
    ids = api.add(*({"created_date": created} for created in cases))
    assert [api.charge(i)["settlement_date"] for i in ids] == list(cases.values())


def test_settlement_date_can_be_null_until_paid_out(api):
    now = _now_local(api)
    (charge_id,) = api.add({"created_date": _stamp(now - timedelta(hours=1))})
    scheduled = api.charge(charge_id)["settlement_date"]
    api.settings(settlement_date_before_payout="null")
    assert api.charge(charge_id)["settlement_date"] is None
    assert api.page()["data"][0]["settlement_date"] is None
    api.admin("POST", "/clock", {"advance_days": 12})
    assert api.charge(charge_id)["settlement_date"] == scheduled
    assert api.page()["data"][0]["settlement_date"] == scheduled


def test_fee_fields_on_a_single_charge_can_be_absent(api):
    (charge_id,) = api.add({})
    api.settings(fee_fields_on_single=False)
    single = api.charge(charge_id)
    assert not {"settlement_fee", "settlement_vat", "payment_link_id", "payment_link_url"} & set(single)
    assert "settlement_fee" in api.page()["data"][0]


def test_fee_and_settlement_fields_can_be_filled_only_after_settlement(api):
    now = _now_local(api)
    paid, failed = api.add({"created_date": _stamp(now)}, {"status": "failed", "created_date": _stamp(now)})
    assert api.charge(paid)["settlement_fee"] is not None
    assert api.charge(failed)["settlement_fee"] is None and api.charge(failed)["settlement_amount"] is None
    api.settings(settlement_fields_filled="after_settlement")
    before = api.charge(paid)
    assert before["settlement_fee"] is None and before["settlement_vat"] is None
    assert before["settlement_amount"] is None
    api.admin("POST", "/clock", {"advance_days": 12})
    after = {c["id"]: c for c in api.page()["data"]}
    assert after[paid]["settlement_fee"] is not None and after[paid]["settlement_amount"] is not None
    assert after[failed]["settlement_fee"] is None


def test_settlement_amount_types(api):
    api.generate(80, status_weights={"captured": 1})
    item = api.page()["data"][0]
    assert isinstance(item["settlement_amount"], Decimal | int)
    assert isinstance(api.charge(item["id"], "single")["settlement_amount"], Decimal | int)
    assert isinstance(api.charge(item["id"], "webhook")["settlement_amount"], str)
    api.settings(settlement_amount_type="string")
    assert all(isinstance(c["settlement_amount"], str) for c in api.all_items())
    assert isinstance(api.charge(item["id"], "single")["settlement_amount"], str)
    api.settings(settlement_amount_type="mixed")
    kinds = {type(c["settlement_amount"]) is str for c in api.all_items()}
    assert kinds == {True, False}


def test_refund_amount_types(api):
    (charge_id,) = api.add({"amount": 50, "refund_amount": Decimal("20.5"), "status": "refunded"})
    assert api.charge(charge_id, "list")["refund_amount"] == "20.5"
    assert api.charge(charge_id, "single")["refund_amount"] == Decimal("20.50")
    api.settings(refund_amount_type="number")
    assert api.charge(charge_id, "list")["refund_amount"] == Decimal("20.50")
    (zero,) = api.add({})
    assert api.get(f"/charges/{zero}").text.count('"refund_amount":0,') == 1


@pytest.mark.parametrize(
    "style, amount, expected",
    [("compact", 100, '"amount":100,'), ("compact", Decimal("12.5"), '"amount":12.50,'),
     ("float", 390, '"amount":390.0,'), ("float", Decimal("12.5"), '"amount":12.5,'),
     ("float", Decimal("33.99"), '"amount":33.99,')],
    ids=["compact-whole", "compact-cents", "float-whole", "float-tenths", "float-cents"],
)  # fmt: skip
def test_number_rendering(api, style, amount, expected):
    (charge_id,) = api.add({"amount": amount})
    api.settings(number_style=style)
    assert expected in api.get(f"/charges/{charge_id}").text
    assert expected in api.get("/charges").text


def test_money_strings_with_or_without_thousands_separators(api):
    (charge_id,) = api.add({"amount": 60000, "settlement_fee": "AED 1,234.50", "settlement_vat": "AED 61.73"})
    assert api.charge(charge_id)["settlement_fee"] == "AED 1234.50"
    api.settings(money_thousands_separator=True)
    assert api.charge(charge_id)["settlement_fee"] == "AED 1,234.50"
    assert api.charge(charge_id, "list")["settlement_vat"] == "AED 61.73"


def test_refunds_array_and_max_refund_amount(api):
    (charge_id,) = api.add({"amount": 100})
    assert "refunds" not in api.charge(charge_id) and "max_refund_amount" not in api.charge(charge_id)
    api.settings(refunds_array=True)
    assert api.charge(charge_id)["refunds"] == [] and api.charge(charge_id)["max_refund_amount"] == 100
    api.post(f"/charges/{charge_id}/refunds", {"amount": 30})
    charge = api.charge(charge_id, "list")
    assert [r["amount"] for r in charge["refunds"]] == [30]
    assert set(charge["refunds"][0]) == {"id", "amount", "amount_currency", "billing_amount", "billing_amount_currency"}
    assert charge["max_refund_amount"] == 70
    assert list(charge)[: len(LIST_KEYS)] == LIST_KEYS


# --- refunds (§6, §12 rows 14–18) ---------------------------------------------------------------


def test_partial_refunds_accumulate_and_settle_after_the_delay(api):
    (charge_id,) = api.add({"amount": 100})
    before = api.charge(charge_id)
    first = api.post(f"/charges/{charge_id}/refunds", {"amount": 20})
    assert first.status_code == 200 and first.json() == {"refund_amount": 20, "refund_status": "success"}
    second = api.post(f"/charges/{charge_id}/refunds", {"amount": Decimal("30.5")})
    assert second.json()["refund_amount"] == 50.5
    charge = api.charge(charge_id)
    assert charge["status"] == "refund_initiated" and charge["refund_amount"] == Decimal("50.50")
    assert charge["refund_status"] == "success"
    assert charge["settlement_amount"] == before["settlement_amount"]  # row 18: unchanged
    api.admin("POST", "/clock", {"advance_seconds": 3601})
    assert api.charge(charge_id)["status"] == "refunded"
    assert api.page()["data"][0]["status"] == "refunded"
    assert api.page()["pagination_meta"]["total_count"] == 1  # row 14: no refund rows


def test_a_partial_refund_can_leave_the_charge_captured(api):
    (charge_id,) = api.add({"amount": 100})
    api.settings(partial_refund_status="captured")
    api.post(f"/charges/{charge_id}/refunds", {"amount": 40})
    assert api.charge(charge_id)["status"] == "captured"
    api.post(f"/charges/{charge_id}/refunds", {"amount": 60})
    assert api.charge(charge_id)["status"] == "refund_initiated"


def test_refund_status_strings_are_settings(api):
    (charge_id,) = api.add({"amount": 100})
    assert api.charge(charge_id)["refund_status"] == "No refund"
    api.settings(refund_status_initiated="pending", refund_status_refunded="success", refund_settle_seconds=60)
    api.post(f"/charges/{charge_id}/refunds", {"amount": 100})
    assert api.charge(charge_id)["refund_status"] == "pending"
    api.admin("POST", "/clock", {"advance_seconds": 61})
    assert api.charge(charge_id)["refund_status"] == "success"


@pytest.mark.parametrize(
    "charge, amount",
    [({"amount": 10}, 11), ({"amount": 10, "status": "failed"}, 5), ({"amount": 10, "status": "processing"}, 5),
     ({"amount": 10, "created_date": "2025-01-01-10-00-00"}, 5)],
    ids=["more-than-paid", "failed", "processing", "older-than-six-months"],
)  # fmt: skip
def test_refunds_mamo_refuses(api, charge, amount):
    (charge_id,) = api.add(charge)
    response = api.post(f"/charges/{charge_id}/refunds", {"amount": amount})
    assert response.status_code == 422
    assert response.json() == {"messages": ["Can not refund this payment"], "error_code": "UNPROCESSABLE ENTITY"}


@pytest.mark.parametrize("amount", [0, Decimal("0.5"), "10", None, Decimal("1.234")], ids=str)
def test_refund_amount_must_be_a_number_of_at_least_one(api, amount):
    (charge_id,) = api.add({"amount": 10})
    response = api.post(f"/charges/{charge_id}/refunds", json.loads(json.dumps({"amount": amount}, default=float)))
    assert response.status_code == 422


def test_refund_of_an_unknown_charge_is_404(api):
    assert api.post("/charges/nope/refunds", {"amount": 1}).status_code == 404


# --- §12 rows 23, 24: rate limits and faults -----------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(api):
    api.settings(rate_limit_per_minute=3)
    assert [api.get("/me").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/me")
    assert limited.status_code == 429
    assert limited.json() == {"messages": ["Too many requests"], "error_code": "TOO_MANY_REQUESTS"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert api.admin("GET", "/stats").json()["rate_limited"] == 1
    api.state.add_business(OTHER_KEY, "Other", business_tag="other")
    assert api.get("/me", key=OTHER_KEY).status_code == 200  # per key
    api.admin("POST", "/clock", {"advance_seconds": 61})
    assert api.get("/me").status_code == 200


def test_faults_every_nth_request_cycle_through_the_statuses(api):
    api.settings(fault_every=2)
    statuses = [api.get("/me").status_code for _ in range(8)]
    assert statuses == [200, 500, 200, 502, 200, 503, 200, 500]


def test_fault_bodies(api):
    api.settings(fault_every=1, fault_statuses=[500, 502, 503])
    five_hundred = api.get("/charges")
    assert five_hundred.json() == {"status": 500, "error": "Internal Server Error"}
    assert "error_code" not in five_hundred.json()
    assert api.get("/charges").headers["content-type"].startswith("text/html")  # 502 from a gateway


# --- inserts in the middle of a scan ----------------------------------------------------------------


def test_inserts_mid_scan_push_items_across_pages(api):
    api.generate(50)
    api.settings(insert_every_pages=1, insert_count=2)
    first, second = api.page(1, 10)["data"], api.page(2, 10)["data"]
    assert first[-2:] == second[:2]  # two new charges on top pushed page 1's tail onto page 2
    assert api.page(1, 10)["pagination_meta"]["total_count"] == 54  # inserted after each of the 2 pages before
    assert api.admin("GET", "/stats").json()["inserted"] == 6


# --- seeded charges (§9 facts) --------------------------------------------------------------------


@pytest.fixture
def seeded(api) -> list[dict]:
    api.generate(3000, seed=11, start="2026-01-01", end="2026-07-01")
    return api.all_items()


def test_generation_is_deterministic(seeded):
    again = build_demo_state(seed=11, count=0, api_key=KEY, business_tag="acme", business_name="Acme Trading LLC")
    again.generate("acme", seed=11, count=3000, start=datetime(2026, 1, 1), end=datetime(2026, 7, 1))
    replay = [again.charge("acme", cid, "list") for cid in again.charge_ids("acme")]
    assert json.dumps(replay, default=str) == json.dumps(seeded, default=str)


def test_generated_statuses_currencies_and_boundaries(seeded):
    statuses = Counter(c["status"] for c in seeded)
    assert {"captured", "failed", "processing", "refunded", "refund_initiated"} <= set(statuses)
    assert statuses["captured"] > len(seeded) / 2
    currencies = Counter(c["amount_currency"] for c in seeded)
    assert currencies.most_common(1)[0][0] == "AED" and {"USD", "EUR", "GBP", "SAR"} <= set(currencies)
    refunded = [c for c in seeded if c["status"] == "refunded"]
    full = [c for c in refunded if Decimal(c["refund_amount"]) == c["amount"]]
    assert full and len(full) < len(refunded)  # full and partial refunds
    times = {c["created_date"][11:] for c in seeded}
    assert {"00-00-00", "23-59-59"} <= times
    assert all(CREATED.match(c["created_date"]) for c in seeded)
    assert all("2026-01-01" <= c["created_date"][:10] < "2026-07-01" for c in seeded)
    failed = [c for c in seeded if c["status"] == "failed"]
    assert all(c["error_code"] and c["settlement_fee"] is None for c in failed)


def _minor(value) -> int:
    return int(Decimal(str(value).split(" ")[-1].replace(",", "")) * 100)


def test_generated_fees_follow_the_growth_plan(api, seeded):
    rates = {k: Decimal(v) for k, v in api.admin("GET", "/settings").json()["fx_rates"].items()}
    paid = [c for c in seeded if c["status"] in ("captured", "refunded", "refund_initiated")]
    assert len(paid) > 2000
    for c in paid:
        gross = _minor(c["amount"])
        if c["amount_currency"] != "AED":
            gross = int((gross * rates[c["amount_currency"]]).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        fee = int((Decimal(gross) * Decimal("0.029")).quantize(Decimal(1), rounding="ROUND_HALF_UP")) + 100
        vat = int((Decimal(fee) * Decimal("0.05")).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        assert (_minor(c["settlement_fee"]), _minor(c["settlement_vat"])) == (fee, vat), c["id"]
        assert _minor(c["settlement_amount"]) == gross - fee - vat
        assert c["settlement_fee"].startswith("AED ") and c["settlement_currency"] == "AED"
        created = date.fromisoformat(c["created_date"][:10])
        settles = datetime.strptime(c["settlement_date"], "%d/%m/%Y").date()
        between = [created + timedelta(days=n) for n in range(1, (settles - created).days + 1)]
        business = [d for d in between if d.isoweekday() <= 5 and d not in mamo_data.DEFAULT_HOLIDAYS]
        assert len(business) == 5 and business[-1] == settles, c["id"]


def test_ids_are_unique_and_mamo_shaped(seeded):
    ids = [c["id"] for c in seeded]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"MPB-CHRG-[0-9A-F]{10}", i) for i in ids)


def test_the_fast_renderer_equals_the_reference_renderer(api):
    api.generate(400)
    table = api.state.tables[KEY]
    for settings in ({}, {"number_style": "float", "money_thousands_separator": True,
                          "settlement_amount_type": "mixed", "refund_amount_type": "number",
                          "created_date_zone": "UTC", "settlement_date_format": "iso",
                          "settlement_date_before_payout": "null"}):  # fmt: skip
        api.settings(**settings)
        renderer = api.state._renderer(KEY)
        for row in range(len(table)):
            reference = "{" + ",".join(f'"{k}":{v}' for k, v in renderer.fields(row, "list").items()) + "}"
            assert renderer.list_item(row) == reference


def test_charge_ids_round_trip():
    for business, row in [(1, 0), (2, 123456), (255, 2**32 - 1)]:
        assert mamo_data.decode_charge_id(mamo_data.encode_charge_id(business, row)) == (business, row)


# --- explicit charges and the admin API ---------------------------------------------------------

EXAMPLE_1_ITEM = """{"status":"captured","id":"MPB-CHRG-E0CE93E071","amount":100,"amount_currency":"AED",
"refund_amount":"0.0","refund_status":"No refund","billing_descriptor":"Mamo*Merchant",
"custom_data":{"internal_customer_id":"0114120d-c394-4cce-9cdb-4ccbae605748","val1":true,"val2":"custom value"},
"created_date":"2023-05-31-11-18-57","subscription_id":"MPB-SUB-B764EDCBA2","next_payment_date":"05/06/2023",
"settlement_amount":356.42,"settlement_currency":"AED","settlement_date":"05/06/2023",
"customer_details":{"name":"Mamo User","email":"email@mamopay.com","phone_number":"+971551234567",
"comment":"Dolore voluptate possimus et."},"payment_method":{"type":"CREDIT VISA","card_holder_name":"Mamo User",
"card_last4":"•••• 4242","origin":"UAE card"},"settlement_fee":"AED 3.20","settlement_vat":"AED 0.16",
"payment_link_id":"MB-LINK-01E6ADB6DE","payment_link_url":"https://staging.business.mamopay.com/pay/dong22-579f10",
"error_code":"generic","error_message":"Unknown reason - user should contact their bank to find out"}""".replace("\n", "")

EXAMPLE_2 = """{"status":"captured","id":"MPB-CHRG-D65B203ABD","amount":33.99,"amount_currency":"AED","refund_amount":0,
"refund_status":"No refund","custom_data":{},"created_date":"2023-12-25-14-38-53","subscription_id":null,
"settlement_amount":"31.99","settlement_currency":"AED","settlement_date":"2024-01-01",
"customer_details":{"name":"","email":"support@mamopay.com","phone_number":"-","comment":"-"},
"payment_method":{"card_id":null,"type":"CREDIT VISA","card_holder_name":"John Doe","card_last4":"1111",
"origin":"International card"},"settlement_fee":"AED 1.90","settlement_vat":"AED 0.10",
"payment_link_id":"MB-LINK-1EC52247EE","payment_link_url":"https://staging.business.mamopay.com/pay/mamosandbox-8acfdf",
"external_id":null,"error_code":null,"error_message":null,"next_payment_date":null,
"event_type":"charge.succeeded"}""".replace("\n", "")


@pytest.mark.parametrize("example, kind", [(EXAMPLE_1_ITEM, "list"), (EXAMPLE_2, "webhook")], ids=["example-1", "example-2"])
def test_explicit_charges_reproduce_the_documented_examples_byte_for_byte(api, example, kind):
    fields = json.loads(example, parse_float=Decimal)
    fields.pop("event_type", None)
    (charge_id,) = api.add(fields)
    url = f"/_sandbox/businesses/acme/charges/{charge_id}?kind={kind}&event_type=charge.succeeded"
    assert api.http.get(api.url + url).content.decode() == example
    if kind == "list":
        assert api.get("/charges").content.decode().startswith('{"data":[' + example + "]")


def test_the_accounting_worked_example_reproduces_to_the_fils(api):
    ids = api.add(*WORKED_EXAMPLE)
    assert ids == ["c1", "c2", "c3", "c4", "c5"]
    items = {c["id"]: c for c in api.all_items()}
    assert items["c1"]["amount"] == 105 and items["c1"]["settlement_amount"] == Decimal("100.75")
    assert items["c1"]["settlement_fee"] == "AED 4.05" and items["c1"]["settlement_vat"] == "AED 0.20"
    assert items["c2"]["amount"] == Decimal("52.50") and items["c2"]["created_date"] == "2026-11-20-23-59-59"
    assert items["c3"]["status"] == "failed" and items["c3"]["settlement_amount"] is None
    assert items["c3"]["settlement_fee"] is None and items["c3"]["settlement_date"] is None
    assert items["c4"]["amount_currency"] == "USD" and items["c4"]["settlement_amount"] == Decimal("34.31")
    assert (items["c4"]["settlement_fee"], items["c4"]["settlement_vat"]) == ("AED 2.07", "AED 0.10")
    assert items["c5"]["created_date"] == "2026-11-21-00-00-01"
    assert [c["id"] for c in api.all_items()] == ["c5", "c2", "c4", "c3", "c1"]  # newest first


def test_explicit_fields_are_served_verbatim_when_they_do_not_parse(api):
    (charge_id,) = api.add({"amount": "12.345", "created_date": "2026-13-45-99-00-00", "custom_data": {"k": 1},
                            "_raw": {"settlement_amount": "N/A"}, "_absent": ["billing_descriptor"]})  # fmt: skip
    charge = api.charge(charge_id, "list")
    assert charge["amount"] == "12.345" and charge["created_date"] == "2026-13-45-99-00-00"
    assert charge["settlement_amount"] == "N/A" and charge["custom_data"] == {"k": 1}
    assert "billing_descriptor" not in charge


def test_update_a_charge_status_and_fields(api):
    (charge_id,) = api.add({"status": "processing", "amount": 200})
    assert api.charge(charge_id)["settlement_fee"] is None
    response = api.admin("PATCH", f"/businesses/acme/charges/{charge_id}", {"status": "captured"})
    assert response.status_code == 200 and response.json()["status"] == "captured"
    assert api.charge(charge_id)["settlement_fee"] == "AED 6.80"  # fees filled at capture: 2.9 % + 1
    api.admin("PATCH", f"/businesses/acme/charges/{charge_id}", {"status": "voided", "settlement_fee": None})
    assert api.charge(charge_id)["status"] == "voided" and api.charge(charge_id)["settlement_fee"] is None
    assert api.page()["data"][0]["status"] == "voided"  # the list's pre-rendered JSON is refreshed


def test_admin_refund_and_errors(api):
    (charge_id,) = api.add({"amount": 50})
    response = api.admin("POST", f"/businesses/acme/charges/{charge_id}/refunds", {"amount": 10})
    assert response.status_code == 200 and response.json()["refund_amount"] == 10
    assert api.admin("POST", f"/businesses/acme/charges/{charge_id}/refunds", {"amount": 100}).status_code == 422
    assert api.admin("GET", "/businesses/nobody/charges/x").status_code == 404
    assert api.admin("GET", f"/businesses/acme/charges/{charge_id}x").status_code == 404


def test_admin_settings_are_validated(api):
    assert api.admin("PATCH", "/settings", {"no_such_setting": 1}).status_code == 422
    assert api.admin("PATCH", "/settings", {"order": "sideways"}).status_code == 422
    assert api.admin("PATCH", "/settings", {"created_date_zone": "Mars/Olympus"}).status_code == 422
    assert api.admin("PATCH", "/settings", {"fault_statuses": [404]}).status_code == 422
    assert api.admin("GET", "/settings").json()["order"] == "newest_first"


def test_admin_businesses_clock_stats_reset(api):
    response = api.admin("POST", "/businesses", {"api_key": OTHER_KEY, "business_name": "Other Co"})
    assert response.status_code == 201 and response.json()["business_tag"] == "otherco"
    assert api.admin("POST", "/businesses", {"api_key": OTHER_KEY, "business_name": "Again"}).status_code == 409
    assert {b["business_tag"] for b in api.admin("GET", "/businesses").json()} == {"acme", "otherco"}
    before = datetime.fromisoformat(api.admin("GET", "/clock").json()["now"])
    after = datetime.fromisoformat(api.admin("POST", "/clock", {"advance_days": 2}).json()["now"])
    assert timedelta(days=2) <= after - before < timedelta(days=2, minutes=1)
    api.get("/me")
    assert api.admin("GET", "/stats").json()["GET /me"] == 1
    api.admin("DELETE", "/stats")
    assert api.admin("GET", "/stats").json() == {}
    assert api.admin("GET", "/health").json()["ok"] is True
    api.admin("POST", "/reset")
    assert api.admin("GET", "/businesses").json() == []
    assert api.get("/me").status_code == 403


def test_demo_state_serves_a_seeded_business():
    state = build_demo_state(seed=3, count=50)
    assert state.keys_by_tag["demo"] == DEMO_API_KEY
    assert len(state.charge_ids("demo")) == 50


# --- §8 webhooks: registration, the ping, deliveries, §12 rows 25-27 -----------------------------------

WEBHOOK_AUTH = "s3cr3t/With+Symbols==  and:colons"  # sent back byte for byte, inner spaces included
#: MAMO_API.md §8.2, written out from the document (not from the sandbox's list)
DOCUMENTED_EVENTS = [
    "charge.succeeded", "charge.failed", "charge.refund_initiated", "charge.refunded", "charge.refund_failed",
    "charge.card_verified", "charge.authorized", "subscription.succeeded", "subscription.failed",
    "payment_link.create", "payout.processed", "payout.failed", "charge.voided", "payment.succeeded",
    "payment.refund_initiated", "payment.refunded", "payment.voided",
]  # fmt: skip


class Receiver:
    """A webhook endpoint on a real socket that keeps every request (path, headers, JSON body)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status, self.sleep = 200, 0.0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            body = await request.body()
            self.requests.append({"path": path, "headers": dict(request.headers), "body": json.loads(body)})
            if self.sleep:
                await asyncio.sleep(self.sleep)
            return Response(b"{}", status_code=self.status, media_type="application/json")

        return app

    def events(self, path: str | None = None) -> list[dict]:
        return [r for r in self.requests if r["body"] != {"ping": "pong"} and (path is None or r["path"] == path)]


@pytest.fixture(scope="module")
def receiving():
    receiver = Receiver()
    with serving(receiver.app()) as server:
        yield receiver, server.url


@pytest.fixture
def receiver(receiving) -> tuple[Receiver, str]:
    receiver, url = receiving
    receiver.requests.clear()
    receiver.status, receiver.sleep = 200, 0.0
    return receiver, url


def call(api: Api, method: str, path: str, body=None, key: str = KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    return api.http.request(method, api.url + API + path, headers=headers, data=data, timeout=30)


def register(api: Api, url: str, events: list[str], auth: str | None = WEBHOOK_AUTH, key: str = KEY) -> dict:
    body = {"url": url, "enabled_events": events} | ({"auth_header": auth} if auth is not None else {})
    response = call(api, "POST", "/webhooks", body, key)
    assert response.status_code == 201, response.text
    return response.json()


def attempts(api: Api) -> list[dict]:
    answer = api.admin("GET", "/webhook-deliveries?wait=20").json()
    assert answer["idle"] is True
    return answer["attempts"]


def test_webhooks_register_list_patch_delete(api, receiver):
    rec, url = receiver
    api.state.add_business(OTHER_KEY, "Other Co", business_tag="other")
    response = call(api, "POST", "/webhooks", {"url": f"{url}/a", "enabled_events": ["charge.refunded"],
                                               "auth_header": WEBHOOK_AUTH, "secret_key": "dropped silently"})
    assert response.status_code == 201
    hook = response.json()
    assert re.fullmatch(r"MPB-WH-[0-9A-F]{10}", hook["id"])
    assert hook == {"id": hook["id"], "url": f"{url}/a", "enabled_events": ["charge.refunded"],
                    "auth_header": WEBHOOK_AUTH}  # fmt: skip
    [ping] = rec.requests  # the ping came first, as Mamo sends it
    assert ping["body"] == {"ping": "pong"} and ping["path"] == "a"
    assert ping["headers"]["user-agent"] == "Faraday v1.10.4"
    assert ping["headers"]["authorization"] == WEBHOOK_AUTH

    listed = call(api, "GET", "/webhooks")
    assert listed.status_code == 200 and listed.json() == [hook]  # a bare array, auth_header in clear
    assert call(api, "GET", "/webhooks", key=OTHER_KEY).json() == []  # per business
    assert call(api, "DELETE", f"/webhooks/{hook['id']}", key=OTHER_KEY).status_code == 404

    patched = call(api, "PATCH", f"/webhooks/{hook['id']}", {"enabled_events": ["payment.refunded", "charge.voided"]})
    assert patched.status_code == 200
    assert patched.json() == hook | {"enabled_events": ["payment.refunded", "charge.voided"]}
    assert call(api, "GET", "/webhooks").json() == [patched.json()]
    assert len(rec.requests) == 2  # the update was pinged too

    deleted = call(api, "DELETE", f"/webhooks/{hook['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert call(api, "GET", "/webhooks").json() == []
    gone = call(api, "DELETE", f"/webhooks/{hook['id']}")
    assert gone.status_code == 404 and gone.json()["error_code"] == "RECORD_NOT_FOUND"
    assert call(api, "PATCH", f"/webhooks/{hook['id']}", {"url": f"{url}/b"}).status_code == 404
    assert call(api, "GET", "/webhooks", key="sk-nobody").status_code == 403


@pytest.mark.parametrize("answer", [500, 404, "closed"], ids=["500", "404", "nothing-listening"])
def test_a_webhook_that_does_not_answer_the_ping_is_refused(api, receiver, answer):
    rec, url = receiver
    if answer == "closed":
        from mamo_sandboxes.serving import free_port

        url = f"http://127.0.0.1:{free_port()}"
    else:
        rec.status = answer
    response = call(api, "POST", "/webhooks", {"url": f"{url}/x", "enabled_events": ["charge.refunded"],
                                               "auth_header": "abc"})
    assert response.status_code == 422
    assert response.json()["messages"] == ["Webhook is unreachable"]
    assert call(api, "GET", "/webhooks").json() == []
    if answer != "closed":
        assert [r["body"] for r in rec.requests] == [{"ping": "pong"}]


@pytest.mark.parametrize(("body", "error"), [
    ({"enabled_events": ["charge.refunded"]}, "Url can't be blank"),
    ({"url": "ftp://example.ae/x", "enabled_events": ["charge.refunded"]}, "Url is invalid"),
    ({"url": "{url}"}, "Enabled events can't be blank"),
    ({"url": "{url}", "enabled_events": []}, "Enabled events can't be blank"),
    ({"url": "{url}", "enabled_events": "charge.refunded"}, "Enabled events can't be blank"),
    ({"url": "{url}", "enabled_events": ["charge.refunded", "charge.exploded"]}, "charge.exploded"),
    ({"url": "{url}", "enabled_events": ["refunded"]}, "refunded"),
    ({"url": "{url}", "enabled_events": ["charge.refunded"], "auth_header": ""}, "too short"),
    ({"url": "{url}", "enabled_events": ["charge.refunded"], "auth_header": "x" * 51}, "too long"),
], ids=["no-url", "not-http", "no-events", "empty-events", "events-not-a-list", "unknown-event", "bare-name",
        "empty-auth", "auth-51"])  # fmt: skip
def test_registration_is_validated_before_any_ping(api, receiver, body, error):
    rec, url = receiver
    body = {k: (f"{url}/v" if v == "{url}" else v) for k, v in body.items()}
    response = call(api, "POST", "/webhooks", body)
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert any(error in text for text in response.json()["errors"]), response.json()
    assert rec.requests == [] and call(api, "GET", "/webhooks").json() == []


def test_every_documented_event_and_a_50_character_auth_header_are_accepted(api, receiver):
    _, url = receiver
    hook = register(api, f"{url}/all", DOCUMENTED_EVENTS, auth="x" * 50)
    assert hook["enabled_events"] == DOCUMENTED_EVENTS and hook["auth_header"] == "x" * 50


def test_a_refund_is_delivered_with_the_exact_authorization_header(api, receiver):
    rec, url = receiver
    api.state.add_business(OTHER_KEY, "Other Co", business_tag="other")
    everything = register(api, f"{url}/all", ["charge.succeeded", "charge.refund_initiated", "charge.refunded"])
    refunds_only = register(api, f"{url}/refunds", ["payment.refund_initiated"], auth="other-header")
    register(api, f"{url}/other", ["charge.succeeded", "charge.refund_initiated"], key=OTHER_KEY)
    (charge_id,) = api.add({"amount": 50})  # added captured: charge.succeeded
    response = api.post(f"/charges/{charge_id}/refunds", {"amount": 20})
    assert response.status_code == 200

    tried = attempts(api)
    assert [(a["webhook_id"], a["event_type"], a["status"]) for a in tried] == [
        (everything["id"], "charge.succeeded", 200), (everything["id"], "charge.refund_initiated", 200),
        (refunds_only["id"], "payment.refund_initiated", 200)]  # fmt: skip
    [succeeded, refund] = rec.events("all")
    for delivery in (succeeded, refund):
        assert delivery["headers"]["authorization"] == WEBHOOK_AUTH
        assert delivery["headers"]["user-agent"] == "Faraday v1.10.4"
        assert delivery["headers"]["content-type"] == "application/json"
        assert list(delivery["body"]) == WEBHOOK_KEYS and delivery["body"]["id"] == charge_id
    assert succeeded["body"]["event_type"] == "charge.succeeded" and succeeded["body"]["refund_amount"] == 0
    assert refund["body"]["event_type"] == "charge.refund_initiated" and refund["body"]["refund_amount"] == 20
    assert refund["body"]["status"] == "refund_initiated"
    [mirrored] = rec.events("refunds")
    assert mirrored["headers"]["authorization"] == "other-header"
    assert mirrored["body"]["event_type"] == "payment.refund_initiated"
    assert rec.events("other") == []  # another business's webhook hears nothing of this charge


def test_admin_changes_are_announced(api, receiver):
    rec, url = receiver
    register(api, f"{url}/h", ["charge.succeeded", "charge.failed", "charge.refund_initiated", "charge.refunded",
                               "charge.voided"])  # fmt: skip
    api.settings(refund_settle_seconds=0)
    (charge_id,) = api.add({"status": "processing", "amount": 80})  # processing announces nothing
    api.admin("PATCH", f"/businesses/acme/charges/{charge_id}", {"custom_data": {"k": 1}})  # no change of state
    api.admin("PATCH", f"/businesses/acme/charges/{charge_id}", {"status": "captured"})
    api.admin("POST", f"/businesses/acme/charges/{charge_id}/refunds", {"amount": 30})
    api.admin("PATCH", f"/businesses/acme/charges/{charge_id}", {"refund_amount": 50})
    (other,) = api.add({"status": "failed"})
    api.admin("PATCH", f"/businesses/acme/charges/{other}", {"status": "voided"})
    assert [(a["charge_id"], a["event_type"], a["body"]["refund_amount"]) for a in attempts(api)] == [
        (charge_id, "charge.succeeded", 0),
        (charge_id, "charge.refund_initiated", 30), (charge_id, "charge.refunded", 30),  # settled at once
        (charge_id, "charge.refunded", 50),
        (other, "charge.failed", 0), (other, "charge.voided", 0),
    ]  # fmt: skip
    assert len(rec.events("h")) == 6


def test_deliveries_leave_off_the_request_thread(api, receiver):
    rec, url = receiver
    register(api, f"{url}/slow", ["charge.refund_initiated"])
    ids = api.add({}, {})
    rec.sleep = 1.5  # a slow receiver must not slow Mamo's API down
    started = datetime.now()
    for charge_id in ids:
        assert api.post(f"/charges/{charge_id}/refunds", {"amount": 1}).status_code == 200
    assert api.get("/me").status_code == 200
    assert datetime.now() - started < timedelta(seconds=1.4)
    assert [a["status"] for a in attempts(api)] == [200, 200]


def test_repeat_and_drop_settings(api, receiver):
    rec, url = receiver
    register(api, f"{url}/r", ["charge.succeeded"])
    api.settings(webhook_repeat=3, webhook_drop_every=4)
    api.add({}, {})
    tried = attempts(api)
    assert [a["attempt"] for a in tried] == [1, 2, 3, 4, 5, 6]
    assert [a["dropped"] for a in tried] == [False, False, False, True, False, False]
    assert [a["status"] for a in tried] == [200, 200, 200, None, 200, 200]
    ids = [r["body"]["id"] for r in rec.events("r")]
    assert len(ids) == 5 and len(set(ids)) == 2  # 3 + 3 sent, the fourth dropped


def test_delay_and_reorder_settings(api, receiver):
    rec, url = receiver
    register(api, f"{url}/o", ["charge.succeeded"])
    api.settings(webhook_delay_seconds=1.0, webhook_reorder=True)
    started = datetime.now()
    created = [api.add({})[0] for _ in range(6)]  # queued while the first waits out the delay: one batch
    tried = attempts(api)
    assert datetime.now() - started >= timedelta(seconds=1.0)
    sent = [r["body"]["id"] for r in rec.events("o")]
    assert sorted(sent) == sorted(created) and sent == [a["charge_id"] for a in tried]
    assert sent != created  # shuffled
    api.settings(webhook_reorder=False, webhook_delay_seconds=0)
    later = [api.add({})[0] for _ in range(4)]
    attempts(api)
    assert [r["body"]["id"] for r in rec.events("o")][6:] == later  # in order by default


def test_webhook_settings_are_validated(api):
    for bad in ({"webhook_repeat": 0}, {"webhook_drop_every": 0}, {"webhook_delay_seconds": -1}):
        assert api.admin("PATCH", "/settings", bad).status_code == 422


def test_reset_forgets_webhooks_and_attempts(api, receiver):
    _, url = receiver
    register(api, f"{url}/z", ["charge.succeeded"])
    api.add({})
    assert len(attempts(api)) == 1
    api.admin("POST", "/reset")
    assert api.admin("GET", "/webhook-deliveries").json()["attempts"] == []
    api.state.add_business(KEY, "Acme Trading LLC", business_tag="acme")
    assert call(api, "GET", "/webhooks").json() == []


def test_a_pickled_sandbox_keeps_its_webhooks_and_delivers_again(api, receiver):
    import copyreg
    import pickle
    import threading

    rec, url = receiver
    copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
    copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))
    hook = register(api, f"{url}/p", ["charge.succeeded"])
    api.add({})
    attempts(api)  # the delivery thread exists now; it is not part of the saved state
    copy = pickle.loads(pickle.dumps(api.state))
    assert copy.webhook_list("acme") == [hook]
    (charge_id,) = copy.add_charges("acme", [{}])
    assert copy.deliverer.wait_idle(20)
    assert [a["charge_id"] for a in copy.deliverer.attempts()] == [charge_id]
    assert rec.events("p")[-1]["body"]["id"] == charge_id
