"""MamoHook against the Mamo sandbox over real sockets, under every MAMO_API.md §12 alternative.

The expected charges come from the sandbox's own store (its columns), not from its JSON, so a
rendering quirk the hook misreads shows up as a difference.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from airflow.sdk import Connection
from fastapi import FastAPI, Request
from fastapi.responses import Response

from mamo_revenue.errors import ChargeDataError, ChargeDateError, MamoApiError, MamoAuthError, MamoUnavailable
from mamo_revenue.hooks import mamo as mamo_hook
from mamo_revenue.hooks.mamo import (
    MamoCallParams,
    MamoHook,
    TransientResponse,
    is_retryable,
    retry_after_seconds,
)
from mamo_sandboxes import mamo_data
from mamo_sandboxes.mamo import MamoSandbox, create_app
from mamo_sandboxes.serving import free_port, serving

KEY = "sk-hook-test-8d88fac2-d3cf-4060"
TAG, COMPANY, PERIOD = "acme", "acme", "2026-11-20"


@pytest.fixture(scope="module")
def served():
    state = MamoSandbox()
    with serving(create_app(state)) as server:
        yield state, server.url


@pytest.fixture
def sandbox(served, monkeypatch) -> MamoSandbox:
    state, url = served
    state.reset()
    state.add_business(KEY, "Acme Trading LLC", business_tag=TAG)
    connect(monkeypatch, url + "/manage_api/v1")
    return state


def connect(monkeypatch, host: str, key: str = KEY, **extra) -> None:
    conn = {"conn_type": "mamo", "host": host, "password": key}
    if extra:
        conn["extra"] = extra
    monkeypatch.setenv("AIRFLOW_CONN_MAMO_TEST", json.dumps(conn))


def make_hook(**overrides) -> MamoHook:
    options = {"backoff_initial": 0.001, "backoff_max": 0.01, "retry_after_max": 0.01, **overrides}
    return MamoHook(mamo_conn_id="mamo_test", **options)


def now_local(state: MamoSandbox, tz: str = "Asia/Dubai") -> datetime:
    return state.clock.now().astimezone(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)


def seed(state: MamoSandbox, count: int = 700, days: int = 400, seed_value: int = 5) -> None:
    end = now_local(state)
    state.generate(TAG, seed=seed_value, count=count, start=end - timedelta(days=days), end=end)


def truth(state: MamoSandbox, tz: str = "Asia/Dubai") -> dict[str, dict]:
    """What the sandbox holds, per charge id, from its columns."""
    table = state.tables[KEY]
    zone = mamo_data.ZoneClock(tz)
    today = state.today().toordinal()
    out = {}
    for row in range(len(table)):
        epoch = table.created[row]
        settled = table.settle_day[row] != 0 and table.settle_day[row] <= today

        def money(column, row=row):
            value = column[row]
            return None if value == mamo_data.NULL else value

        out[table.id_of(row)] = {
            "created_local": datetime.fromtimestamp(epoch, zone.zone).replace(tzinfo=None),
            "status": mamo_data.STATUSES[table.status[row]],
            "currency": mamo_data.CURRENCIES[table.currency[row]],
            "amount_minor": table.amount[row],
            "refund_minor": table.refund[row],
            "settlement_minor": money(table.settlement),
            "fee_minor": money(table.fee),
            "fee_vat_minor": money(table.vat),
            "settlement_date": date.fromordinal(table.settle_day[row]) if table.settle_day[row] else None,
            "settled": settled,
        }
    return out


def check(charges, expected: dict[str, dict], created_from: datetime, *, fees_when_settled=False,
          dates_when_settled=False) -> None:  # fmt: skip
    ids = [c.id for c in charges]
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) == {i for i, t in expected.items() if t["created_local"] >= created_from}
    for charge in charges:
        t = expected[charge.id]
        assert charge.problems == (), (charge.id, charge.problems)
        assert charge.created_local == t["created_local"]
        assert (charge.status, charge.currency) == (t["status"], t["currency"])
        assert (charge.amount_minor, charge.refund_minor) == (t["amount_minor"], t["refund_minor"])
        hidden = fees_when_settled and not t["settled"]
        for name in ("settlement_minor", "fee_minor", "fee_vat_minor"):
            assert getattr(charge, name) == (None if hidden else t[name]), (charge.id, name)
        if t["fee_minor"] is not None and not hidden:
            assert charge.fee_currency == "AED" and charge.settlement_currency == "AED"
        hidden_date = dates_when_settled and not t["settled"]
        assert charge.settlement_date == (None if hidden_date else t["settlement_date"]), charge.id


# --- the connection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"host": "http://127.0.0.1:8701/manage_api/v1/", "password": "sk-1"},
         MamoCallParams("http://127.0.0.1:8701/manage_api/v1", "sk-1", "charges", 100, 30.0)),
        ({"host": "business.mamopay.com/manage_api/v1", "password": "sk-2",
          "extra": json.dumps({"resource": "payments", "per_page": "50", "timeout": 5})},
         MamoCallParams("https://business.mamopay.com/manage_api/v1", "sk-2", "payments", 50, 5.0)),
        ({"host": "sandbox.dev.business.mamopay.com/manage_api/v1", "schema": "http", "password": "sk-3",
          "extra": json.dumps({"extra__mamo__resource": "charges"})},
         MamoCallParams("http://sandbox.dev.business.mamopay.com/manage_api/v1", "sk-3", "charges", 100, 30.0)),
    ],
    ids=["full-url", "no-scheme-and-extras", "schema-and-prefixed-extra"],
)  # fmt: skip
def test_call_params_from_a_connection(fields, expected):
    params = MamoHook.call_params(Connection(conn_id="m", conn_type="mamo", **fields))
    assert params == expected
    assert params.api_key not in repr(params)


@pytest.mark.parametrize(
    "fields, error",
    [({"password": "sk"}, MamoApiError), ({"host": "http://h/manage_api/v1"}, MamoAuthError),
     ({"host": "http://h", "password": "sk", "extra": json.dumps({"resource": "links"})}, MamoApiError),
     ({"host": "http://h", "password": "sk", "extra": json.dumps({"per_page": 0})}, MamoApiError),
     ({"host": "http://h", "password": "sk", "extra": json.dumps({"timeout": "soon"})}, MamoApiError)],
    ids=["no-host", "no-key", "bad-resource", "zero-per-page", "bad-timeout"],
)  # fmt: skip
def test_call_params_refuse_a_broken_connection(fields, error):
    with pytest.raises(error):
        MamoHook.call_params(Connection(conn_id="m", conn_type="mamo", **fields))


def test_constructing_a_hook_touches_nothing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MAMO_TEST", raising=False)
    hook = make_hook()  # no connection look-up, no session yet
    assert hook._session is None
    assert (MamoHook.conn_name_attr, MamoHook.default_conn_name, MamoHook.conn_type, MamoHook.hook_name) == (
        "mamo_conn_id", "mamo_default", "mamo", "Mamo")  # fmt: skip


def test_session_is_built_once_with_the_headers(sandbox):
    hook = make_hook()
    session = hook.get_conn()
    assert hook.get_conn() is session
    assert session.headers["Authorization"] == f"Bearer {KEY}"
    assert session.headers["Accept"] == session.headers["Content-Type"] == "application/json"


# --- /me, one charge, errors --------------------------------------------------------------------


def test_get_me_and_test_connection(sandbox):
    hook = make_hook()
    assert hook.get_me() == {"business_name": "Acme Trading LLC", "business_tag": "acme",
                             "website": "https://acme.example.ae"}  # fmt: skip
    ok, message = hook.test_connection()
    assert ok and "Acme Trading LLC" in message


def test_a_wrong_key_is_an_auth_error_without_retries(sandbox, served, monkeypatch):
    connect(monkeypatch, served[1] + "/manage_api/v1", key="sk-revoked-key-123")
    hook = make_hook()
    with pytest.raises(MamoAuthError) as caught:
        hook.fetch_charges(created_from=datetime(2026, 1, 1), tz="Asia/Dubai", company=COMPANY, period=PERIOD)
    assert "403" in str(caught.value) and "sk-revoked-key-123" not in str(caught.value)
    assert sandbox.stats["requests"] == 1
    ok, message = hook.test_connection()
    assert not ok and "403" in message and "sk-revoked" not in message


def test_get_charge_and_a_missing_one(sandbox):
    (charge_id,) = sandbox.add_charges(
        TAG, [{"amount": Decimal("33.99"), "created_date": "2026-11-20-14-38-53"}]
    )
    charge = make_hook().get_charge(charge_id)
    assert (charge.id, charge.amount_minor, charge.created_local) == (
        charge_id,
        3399,
        datetime(2026, 11, 20, 14, 38, 53),
    )
    with pytest.raises(MamoApiError) as caught:
        make_hook().get_charge("MPB-CHRG-0000000000")
    assert caught.value.status_code == 404 and caught.value.error_code == "RECORD_NOT_FOUND"
    assert not isinstance(caught.value, MamoAuthError)


def test_get_charge_without_fee_fields(sandbox):
    (charge_id,) = sandbox.add_charges(TAG, [{"amount": 100}])
    sandbox.update_settings(fee_fields_on_single=False)
    charge = make_hook().get_charge(charge_id)
    assert charge.fee_minor is None and charge.settlement_minor == 10000 - 390 - 20


def test_a_charge_without_a_readable_created_date_names_company_period_charge_and_field(sandbox):
    seed(sandbox, count=50, days=30)
    (bad,) = sandbox.add_charges(TAG, [{"id": "MPB-CHRG-BADDATE001", "created_date": "2026-13-45-99-00-00"}])
    with pytest.raises(ChargeDateError) as caught:
        make_hook().fetch_charges(
            created_from=datetime(2020, 1, 1), tz="Asia/Dubai", company=COMPANY, period=PERIOD
        )
    message = str(caught.value)
    assert all(part in message for part in (COMPANY, PERIOD, bad, "created_date"))
    assert (caught.value.company, caught.value.period, caught.value.charge_id) == (COMPANY, PERIOD, bad)


def test_other_malformed_fields_are_kept_as_problems_for_the_period_run(sandbox):
    now = now_local(sandbox)
    sandbox.add_charges(
        TAG, [{"id": "bad-amount", "amount": "12.345", "created_date": now.strftime("%Y-%m-%d-%H-%M-%S")}]
    )
    (charge,) = make_hook().fetch_charges(created_from=now - timedelta(days=1), tz="Asia/Dubai",
                                          company=COMPANY, period=PERIOD)  # fmt: skip
    assert charge.id == "bad-amount" and [name for name, _ in charge.problems] == ["amount"]


def test_an_id_less_charge_is_a_data_error_in_context(sandbox):
    sandbox.add_charges(TAG, [{"_absent": ["id"]}])
    with pytest.raises(ChargeDataError) as caught:
        make_hook().fetch_charges(
            created_from=datetime(2020, 1, 1), tz="Asia/Dubai", company=COMPANY, period=PERIOD
        )
    assert caught.value.company == COMPANY and caught.value.period == PERIOD and caught.value.field == "id"


# --- every §12 alternative ----------------------------------------------------------------------

SCENARIOS = {
    "defaults": {},
    "oldest-first": {"order": "oldest_first"},
    "unordered": {"order": "unordered"},
    "default-per-page-25": {"default_per_page": 25},
    "max-per-page-cut-to-25": {"max_per_page": 25},
    "max-per-page-422": {"max_per_page": 25, "per_page_over_max": "reject"},
    "page-past-end-404": {"page_past_end": "not_found"},
    "bad-page-422": {"bad_page": "reject"},
    "settlement-date-iso": {"settlement_date_format": "iso"},
    "settlement-date-dmy-everywhere": {"settlement_date_format": "dmy"},
    "no-fee-fields-on-single": {"fee_fields_on_single": False},
    "settlement-amount-string-everywhere": {"settlement_amount_type": "string"},
    "types-mixed-per-charge": {"settlement_amount_type": "mixed", "refund_amount_type": "number"},
    "refund-amount-number-everywhere": {"refund_amount_type": "number"},
    "numbers-390.0-style": {"number_style": "float"},
    "thousands-separators": {"money_thousands_separator": True},
    "refund-status-strings": {"refund_status_initiated": "pending", "refund_status_refunded": "failed"},
    "refunds-array": {"refunds_array": True},
    "premium-plan-fees": {"fee_percent": "2.7", "fee_fixed": "0.80"},
}


@pytest.mark.parametrize("settings", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_fetch_charges_under_each_setting(sandbox, settings):
    sandbox.update_settings(**settings)
    seed(sandbox)
    big = now_local(sandbox) - timedelta(days=3)
    sandbox.add_charges(TAG, [{"amount": 120000, "created_date": big.strftime("%Y-%m-%d-%H-%M-%S")},
                              {"amount": Decimal("45678.90"), "amount_currency": "USD",
                               "created_date": big.strftime("%Y-%m-%d-%H-%M-%S")}])  # fmt: skip
    created_from = now_local(sandbox) - timedelta(days=200)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    assert any(c.fee_minor and c.fee_minor >= 100_000 for c in charges)  # four-digit fees were read


def test_created_date_in_utc(sandbox):
    sandbox.update_settings(created_date_zone="UTC")
    seed(sandbox)
    created_from = now_local(sandbox, "UTC") - timedelta(days=100)
    charges = make_hook().fetch_charges(created_from=created_from, tz="UTC", company=COMPANY, period=PERIOD)
    check(charges, truth(sandbox, "UTC"), created_from)


def test_fee_and_settlement_fields_filled_only_after_settlement(sandbox):
    sandbox.update_settings(settlement_fields_filled="after_settlement", settlement_date_before_payout="null")
    seed(sandbox, count=400, days=30)
    created_from = now_local(sandbox) - timedelta(days=30)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from, fees_when_settled=True, dates_when_settled=True)
    assert any(c.fee_minor is None and c.is_sale for c in charges) and any(c.fee_minor for c in charges)


def test_payments_resource(sandbox, served, monkeypatch):
    connect(monkeypatch, served[1] + "/manage_api/v1", resource="payments")
    seed(sandbox, count=250)
    created_from = now_local(sandbox) - timedelta(days=400)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    assert sandbox.stats["GET /charges"] == 3  # the sandbox counts /payments under the same route


@pytest.mark.parametrize("order", ["newest_first", "oldest_first", "unordered"])
def test_refunds_made_between_scans_are_seen(sandbox, order):
    sandbox.update_settings(order=order)
    seed(sandbox, count=300, days=150)
    created_from = now_local(sandbox) - timedelta(days=160)
    hook = make_hook()
    before = {c.id: c for c in hook.fetch_charges(created_from=created_from, tz="Asia/Dubai", company=COMPANY,
                                                 period=PERIOD)}  # fmt: skip
    target = next(c for c in before.values() if c.status == "captured" and c.amount_minor > 500)
    sandbox.refund(TAG, target.id, Decimal(2))
    after = {c.id: c for c in hook.fetch_charges(created_from=created_from, tz="Asia/Dubai", company=COMPANY,
                                                period=PERIOD)}  # fmt: skip
    assert after[target.id].refund_minor == target.refund_minor + 200
    assert after[target.id].status == "refund_initiated"


# --- retries ------------------------------------------------------------------------------------------


def test_rate_limits_are_waited_out(sandbox):
    sandbox.update_settings(rate_limit_per_minute=3, rate_limit_window_seconds=0.1)
    seed(sandbox)
    created_from = now_local(sandbox) - timedelta(days=400)
    charges = make_hook(retry_after_max=0.12).fetch_charges(created_from=created_from, tz="Asia/Dubai",
                                                            company=COMPANY, period=PERIOD)  # fmt: skip
    check(charges, truth(sandbox), created_from)
    assert sandbox.stats["rate_limited"] >= 1


def test_retry_after_is_honoured_and_capped(sandbox, monkeypatch):
    waits: list[float] = []

    def fake_sleep(seconds: float) -> None:  # the sandbox's clock moves instead of the test waiting
        waits.append(seconds)
        sandbox.advance_clock(seconds)

    monkeypatch.setattr(mamo_hook, "_sleep", fake_sleep)
    sandbox.update_settings(rate_limit_per_minute=1, rate_limit_window_seconds=30)
    make_hook(retry_after_max=120).get_me()
    make_hook(retry_after_max=120).get_me()  # 429 with Retry-After: 30, then success
    assert waits == [30.0]
    make_hook(retry_after_max=5, max_attempts=8).get_me()  # capped at 5 s: six waits of 5 s
    assert waits[1:] == [5.0] * 6
    assert sandbox.stats["rate_limited"] == 7


@pytest.mark.parametrize(
    "statuses", [[500], [502], [503], [500, 502, 503]], ids=["500", "502", "503", "cycle"]
)
def test_server_faults_are_retried(sandbox, statuses):
    sandbox.update_settings(fault_every=3, fault_statuses=statuses)
    seed(sandbox)
    created_from = now_local(sandbox) - timedelta(days=400)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    assert sandbox.stats["faults"] >= 2


def test_backoff_is_exponential_without_retry_after(sandbox, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(mamo_hook, "_sleep", waits.append)
    sandbox.update_settings(fault_every=1, fault_statuses=[503])
    with pytest.raises(MamoUnavailable) as caught:
        make_hook(max_attempts=5, backoff_initial=0.5, backoff_max=3).get_me()
    assert waits == [0.5, 1.0, 2.0, 3.0]
    assert sandbox.stats["requests"] == 5
    assert "5 attempts" in str(caught.value) and "503" in str(caught.value)


def test_an_unreachable_server_is_unavailable_after_the_retries(monkeypatch):
    connect(monkeypatch, f"http://127.0.0.1:{free_port()}/manage_api/v1")
    with pytest.raises(MamoUnavailable):
        make_hook(max_attempts=3).get_me()
    ok, message = make_hook(max_attempts=1).test_connection()
    assert not ok and "did not answer" in message


@pytest.mark.parametrize(
    "exc, retry",
    [(TransientResponse(429, "GET /me"), True), (TransientResponse(503, "GET /me"), True),
     (requests.Timeout(), True), (requests.ConnectionError(), True),
     (requests.exceptions.ChunkedEncodingError(), True), (MamoAuthError("x"), False), (MamoApiError("x"), False),
     (ValueError(), False)],
    ids=["429", "503", "timeout", "connection", "chunked", "auth", "api", "value"],
)  # fmt: skip
def test_the_retry_predicate(exc, retry):
    assert is_retryable(exc) is retry


@pytest.mark.parametrize(
    "header, seconds",
    [(None, None), ("", None), ("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("soon", None),
     ("Mon, 23 Nov 2026 10:00:30 GMT", 30.0), ("Mon, 23 Nov 2026 09:59:00 GMT", 0.0)],
    ids=["absent", "empty", "seconds", "zero", "fraction", "garbage", "http-date", "http-date-past"],
)  # fmt: skip
def test_retry_after_header_forms(header, seconds):
    assert retry_after_seconds(header, now=datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)) == seconds


# --- paging: stop rule, dedup ------------------------------------------------------------------------


def _pages_until_stop(state: MamoSandbox, created_from: datetime, per_page: int = 100) -> int:
    ids = state.charge_ids(TAG)  # newest first
    t = truth(state)
    for page in range(1, len(ids) // per_page + 2):
        chunk = ids[(page - 1) * per_page : page * per_page]
        if page > 1 and all(t[i]["created_local"] < created_from for i in chunk):
            return page
    raise AssertionError("no page is wholly older")


def test_newest_first_stops_after_a_whole_older_page(sandbox):
    seed(sandbox, count=1000, days=100)
    created_from = now_local(sandbox) - timedelta(days=20)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    expected_pages = _pages_until_stop(sandbox, created_from)
    assert sandbox.stats["GET /charges"] == expected_pages < 10


@pytest.mark.parametrize("order", ["oldest_first", "unordered"])
def test_other_orders_read_every_page(sandbox, order):
    sandbox.update_settings(order=order)
    seed(sandbox, count=1000, days=100)
    created_from = now_local(sandbox) - timedelta(days=20)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    assert sandbox.stats["GET /charges"] == 10


def test_one_charge_per_page_oldest_first_is_not_mistaken_for_newest_first(sandbox, monkeypatch, served):
    connect(monkeypatch, served[1] + "/manage_api/v1", per_page=1)
    sandbox.update_settings(order="oldest_first")
    old = now_local(sandbox) - timedelta(days=50)
    sandbox.add_charges(
        TAG, [{"created_date": (old + timedelta(days=n)).strftime("%Y-%m-%d-%H-%M-%S")} for n in range(5)]
    )
    charges = make_hook().fetch_charges(created_from=old + timedelta(days=3), tz="Asia/Dubai", company=COMPANY,
                                        period=PERIOD)  # fmt: skip
    assert len(charges) == 2 and sandbox.stats["GET /charges"] == 5


@pytest.mark.parametrize("order", ["newest_first", "oldest_first", "unordered"])
def test_inserts_in_the_middle_of_a_scan_cause_no_duplicates_and_no_losses(sandbox, order):
    sandbox.update_settings(order=order, insert_every_pages=1, insert_count=7)
    seed(sandbox)
    before = truth(sandbox)
    created_from = now_local(sandbox) - timedelta(days=400)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    ids = [c.id for c in charges]
    assert len(ids) == len(set(ids))
    assert set(before) <= set(ids) <= set(truth(sandbox))
    assert sandbox.stats["inserted"] >= 49


def _bare_mamo(items: list[dict], per_page: int) -> FastAPI:
    """A Mamo without pagination_meta that answers 404 past the last page (§12 row 4)."""
    app = FastAPI()

    @app.get("/manage_api/v1/charges")
    async def charges(request: Request) -> Response:
        page = int(request.query_params["page"])
        chunk = items[(page - 1) * per_page : page * per_page]
        if not chunk and page > 1:
            return Response(b'{"messages":["Not found"],"error_code":"NOT_FOUND"}', status_code=404)
        return Response(json.dumps({"data": chunk}).encode(), media_type="application/json")

    return app


@pytest.mark.parametrize("count", [250, 300], ids=["short-last-page", "full-last-page"])
def test_an_envelope_without_pagination_meta_ends_on_a_short_page_or_404(monkeypatch, count):
    items = [{"id": f"c{n}", "status": "captured", "amount": 10, "amount_currency": "AED", "refund_amount": 0,
              "created_date": f"2026-11-{20 - n // 100:02d}-10-00-{n % 60:02d}"} for n in range(count)]  # fmt: skip
    with serving(_bare_mamo(items, 100)) as server:
        connect(monkeypatch, server.url + "/manage_api/v1")
        charges = make_hook().fetch_charges(created_from=datetime(2026, 11, 1), tz="Asia/Dubai", company=COMPANY,
                                            period=PERIOD)  # fmt: skip
    assert len(charges) == count


def test_a_server_ignoring_page_is_caught(monkeypatch):
    app = FastAPI()

    @app.get("/manage_api/v1/charges")
    async def charges() -> Response:
        data = [{"id": f"c{n}", "status": "captured", "amount": 1, "amount_currency": "AED",
                 "created_date": "2026-11-20-10-00-00"} for n in range(100)]  # fmt: skip
        return Response(json.dumps({"data": data, "pagination_meta": {"next_page": 2}}).encode(),
                        media_type="application/json")  # fmt: skip

    with serving(app) as server:
        connect(monkeypatch, server.url + "/manage_api/v1")
        with pytest.raises(MamoApiError, match="does not advance"):
            make_hook().fetch_charges(created_from=datetime(2026, 11, 1), tz="Asia/Dubai", company=COMPANY,
                                      period=PERIOD)  # fmt: skip


def test_the_key_never_reaches_the_logs(sandbox, capfd, caplog):
    sandbox.update_settings(fault_every=2)
    seed(sandbox, count=300)
    hook = make_hook()
    hook.fetch_charges(created_from=datetime(2020, 1, 1), tz="Asia/Dubai", company=COMPANY, period=PERIOD)
    out, err = capfd.readouterr()
    assert "read 3 pages of Mamo /charges" in out + err + caplog.text
    assert KEY not in out + err + caplog.text


def test_a_refused_page_size_falls_back_to_smaller_pages(sandbox):
    sandbox.update_settings(max_per_page=25, per_page_over_max="reject")
    seed(sandbox, count=120)
    created_from = now_local(sandbox) - timedelta(days=400)
    charges = make_hook().fetch_charges(
        created_from=created_from, tz="Asia/Dubai", company=COMPANY, period=PERIOD
    )
    check(charges, truth(sandbox), created_from)
    assert sandbox.stats["GET /charges"] == 2 + 5  # 100 and 50 refused, then five pages of 25


def test_a_404_on_the_first_page_is_an_error(sandbox, served, monkeypatch):
    connect(monkeypatch, served[1] + "/manage_api/v2")
    with pytest.raises(MamoApiError) as caught:
        make_hook().fetch_charges(
            created_from=datetime(2026, 1, 1), tz="Asia/Dubai", company=COMPANY, period=PERIOD
        )
    assert getattr(caught.value, "status_code", None) == 404


# --- webhooks (MAMO_API.md §8.1) ---------------------------------------------------------------------

WEBHOOK_SECRET = "hook-test-secret-9f8e7d6c5b4a39281706"


@pytest.fixture(scope="module")
def receiver_url():
    """A webhook endpoint on a real socket: answers 200 to anything (the ping included)."""
    app = FastAPI()
    seen: list[bytes] = []

    @app.post("/{path:path}")
    async def hook(path: str, request: Request) -> Response:
        seen.append(await request.body())
        return Response(b"{}", media_type="application/json")

    with serving(app) as server:
        yield server.url


def test_register_list_and_delete_a_webhook(sandbox, receiver_url):
    hook = make_hook()
    events = ["charge.refund_initiated", "charge.refunded"]
    created = hook.register_webhook(f"{receiver_url}/acme", events, WEBHOOK_SECRET)
    assert created["id"].startswith("MPB-WH-")
    assert created["url"] == f"{receiver_url}/acme" and created["enabled_events"] == events
    assert hook.list_webhooks() == [created] == sandbox.webhook_list(TAG)
    hook.delete_webhook(created["id"])
    assert hook.list_webhooks() == []
    with pytest.raises(MamoApiError) as caught:
        hook.delete_webhook(created["id"])
    assert getattr(caught.value, "status_code", None) == 404


def test_an_unreachable_webhook_is_a_refusal_without_retries(sandbox):
    url = f"http://127.0.0.1:{free_port()}/acme"
    with pytest.raises(MamoApiError, match="Webhook is unreachable") as caught:
        make_hook().register_webhook(url, ["charge.refunded"], WEBHOOK_SECRET)
    assert getattr(caught.value, "status_code", None) == 422
    assert sandbox.stats["POST /webhooks"] == 1
    assert sandbox.webhook_list(TAG) == []


def test_an_unknown_event_is_refused_by_mamos_validator(sandbox, receiver_url):
    with pytest.raises(MamoApiError, match="charge.exploded"):
        make_hook().register_webhook(f"{receiver_url}/acme", ["charge.exploded"], WEBHOOK_SECRET)


def test_registration_is_retried_on_a_fault_and_the_secret_never_reaches_the_logs(sandbox, receiver_url, capfd,
                                                                                caplog):
    sandbox.update_settings(fault_every=1, fault_statuses=[503])
    hook = make_hook(max_attempts=2)
    with pytest.raises(MamoUnavailable):
        hook.register_webhook(f"{receiver_url}/acme", ["charge.refunded"], WEBHOOK_SECRET)
    sandbox.update_settings(fault_every=None)
    created = hook.register_webhook(f"{receiver_url}/acme", ["charge.refunded"], WEBHOOK_SECRET)
    hook.list_webhooks()
    hook.delete_webhook(created["id"])
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "retrying" in logs and f"Registered Mamo webhook {created['id']}" in logs
    assert WEBHOOK_SECRET not in logs and KEY not in logs


def _forgetful_mamo(drops: str, deleted: list[str]) -> FastAPI:
    """A Mamo that accepts a registration but silently drops one field of it (§8.1)."""
    app = FastAPI()

    @app.post("/manage_api/v1/webhooks")
    async def register(request: Request) -> Response:
        body = json.loads(await request.body())
        kept = {k: v for k, v in body.items() if k != drops}
        return Response(json.dumps({"id": "MPB-WH-0123456789", **kept}).encode(), status_code=201,
                        media_type="application/json")  # fmt: skip

    @app.delete("/manage_api/v1/webhooks/{webhook_id}")
    async def delete(webhook_id: str) -> Response:
        deleted.append(webhook_id)
        return Response(b'{"success":true}', media_type="application/json")

    return app


@pytest.mark.parametrize("drops", ["auth_header", "enabled_events", "url"])
def test_a_registration_mamo_changed_is_deleted_and_reported(monkeypatch, caplog, drops):
    deleted: list[str] = []
    with serving(_forgetful_mamo(drops, deleted)) as server:
        connect(monkeypatch, server.url + "/manage_api/v1")
        with pytest.raises(MamoApiError, match=f"differently from what was sent \\({drops} differ") as caught:
            make_hook().register_webhook("https://example.ae/mamo-webhooks/acme", ["charge.refunded"],
                                         WEBHOOK_SECRET)  # fmt: skip
    assert deleted == ["MPB-WH-0123456789"]
    assert WEBHOOK_SECRET not in str(caught.value) + caught.value.guidance + caplog.text
