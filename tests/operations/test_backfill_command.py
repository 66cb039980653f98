"""`mamo-revenue backfill` and `mamo-revenue settings load`: the range in each company's zone, the REST calls
and what the command says for every answer Airflow can give; the pools loaded into a plain install.

The whole path against a real api-server and scheduler is tests/operations/test_production_run.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mamo_revenue import backfill, cli
from mamo_revenue.preload import forks_tasks

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("frequency", "tz", "first", "last", "expected"), [
    ("daily", "Asia/Dubai", date(2026, 10, 1), date(2026, 10, 31),
     (datetime(2026, 10, 1, tzinfo=ZoneInfo("Asia/Dubai")), datetime(2026, 10, 31, tzinfo=ZoneInfo("Asia/Dubai")), 31)),
    ("weekly", "Europe/London", date(2026, 10, 1), date(2026, 10, 31),
     (datetime(2026, 9, 28, tzinfo=ZoneInfo("Europe/London")), datetime(2026, 10, 26, tzinfo=ZoneInfo("Europe/London")),
      5)),
    ("daily", "Asia/Dubai", date(2026, 10, 14), date(2026, 10, 14),
     (datetime(2026, 10, 14, tzinfo=ZoneInfo("Asia/Dubai")), datetime(2026, 10, 14, tzinfo=ZoneInfo("Asia/Dubai")), 1)),
], ids=["daily-dubai", "weekly-mondays", "one-day"])
def test_the_range_becomes_the_dags_logical_dates_in_the_companys_zone(frequency, tz, first, last, expected):
    span = backfill.window(first, last, timezone=tz, frequency=frequency)
    assert (span.from_date, span.to_date, span.periods) == expected
    # what Airflow receives: the period's first day at 00:00 local, i.e. 20:00 UTC the day before in Dubai
    assert span.from_date.isoformat().endswith(("+04:00", "+01:00", "+00:00"))


def test_a_reversed_range_is_refused():
    with pytest.raises(backfill.BackfillError, match="before --from"):
        backfill.window(date(2026, 10, 2), date(2026, 10, 1), timezone="UTC", frequency="daily")


# --- against a stand-in api-server on a real socket ------------------------------------------------------


class FakeAirflow(BaseHTTPRequestHandler):
    """/auth/token and /api/v2/backfills[/dry_run], answering what each DAG id is set up to answer."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.server.calls.append((self.path, body, self.headers.get("Authorization")))
        if self.path == "/auth/token":
            ok = body == {"username": "admin", "password": "s3cret-pass"}
            return self.answer(201 if ok else 401, {"access_token": "tok-123"} if ok else {"detail": "no"})
        if self.headers.get("Authorization") != "Bearer tok-123":
            return self.answer(401, {"detail": "Not authenticated"})
        plan = self.server.plans[body["dag_id"]]
        if self.path.endswith("/dry_run"):
            return self.answer(plan.get("dry_status", 200), plan.get("dry", {"backfills": [], "total_entries": 3}))
        return self.answer(plan.get("status", 200), plan.get("created", {"id": 7}))

    def do_GET(self):  # noqa: N802
        self.server.calls.append((self.path, None, self.headers.get("Authorization")))
        dag_id = self.path.rsplit("/", 1)[-1]
        return self.answer(200, self.server.plans[dag_id].get("dag", {"is_paused": False,
                                                                      "next_dagrun_logical_date": None}))

    def do_PATCH(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.server.calls.append((self.path, body, self.headers.get("Authorization")))
        return self.answer(200, {"dag_id": self.path.rsplit("/", 1)[-1].split("?")[0]} | body)

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def airflow_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    server.calls, server.plans = [], {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Co:
    id: str
    timezone: str = "Asia/Dubai"
    frequency: str = "daily"


@pytest.mark.parametrize(("plan", "ok", "says"), [
    ({}, True, "backfill #7: 3 run(s), at most 8 at a time"),
    ({"dry": {"backfills": [], "total_entries": 0}}, True, "nothing to run"),
    ({"status": 409, "created": {"detail": "There is already a running backfill for dag mamo_sync_c"}}, False,
     "already running"),
    ({"dry_status": 422, "dry": {"detail": [{"msg": "Value error, Backfill cannot be executed for future dates."}]}},
     False, "future dates"),
    ({"dry_status": 404, "dry": {"detail": "Could not find dag mamo_sync_c"}}, False, "Could not find dag"),
], ids=["created", "nothing-to-do", "already-running", "future", "no-dag"])
def test_what_the_command_says_for_each_answer(airflow_api, plan, ok, says):
    airflow_api.plans["mamo_sync_c"] = plan
    api = backfill.AirflowApi(f"http://127.0.0.1:{airflow_api.server_port}", username="admin", password="s3cret-pass")
    outcome = backfill.backfill_company(api, Co("c"), date(2026, 10, 1), date(2026, 10, 3), closed=1)
    assert outcome.ok is ok and says in outcome.text
    path, body, _ = airflow_api.calls[1]
    assert path == "/api/v2/backfills/dry_run"
    assert body == {"dag_id": "mamo_sync_c", "from_date": "2026-10-01T00:00:00+04:00",
                    "to_date": "2026-10-03T00:00:00+04:00", "reprocess_behavior": "none", "max_active_runs": 8,
                    "run_backwards": False}


def test_a_refused_login_is_a_clear_error_without_the_password(airflow_api):
    api = backfill.AirflowApi(f"http://127.0.0.1:{airflow_api.server_port}", username="admin", password="wrong-pass")
    with pytest.raises(backfill.BackfillError) as caught:
        api.token()
    assert "refused the login of 'admin' (HTTP 401)" in str(caught.value) and "wrong-pass" not in str(caught.value)


def test_the_command_needs_companies(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["backfill", "--from", "2026-10-01", "--to", "2026-10-02"])
    assert exited.value.code == 2 and "one of the arguments --company --all is required" in capsys.readouterr().err


# --- preloading and settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "forks"), [
    (["/venv/bin/airflow", "scheduler"], True), (["airflow", "celery", "worker"], True),
    (["airflow", "api-server"], False), (["airflow", "dag-processor"], False), (["pytest"], False),
], ids=["scheduler", "celery-worker", "api-server", "dag-processor", "other"])
def test_only_the_processes_that_fork_tasks_preload(argv, forks):
    assert forks_tasks(argv) is forks


@pytest.mark.airflow
def test_settings_load_puts_the_pools_into_a_plain_airflow(airflow_metadata):
    env = {**os.environ}
    done = subprocess.run([str(BIN / "mamo-revenue"), "settings", "load", "--only", "pools",
                           str(ROOT / "airflow_settings.yaml")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 pool(s) xero_api, zoho_books_api, mamo_api" in done.stdout and "0 connection(s)" in done.stdout
    pools = subprocess.run([str(BIN / "airflow"), "pools", "list", "-o", "json"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert {"xero_api", "zoho_books_api", "mamo_api"} <= {p["pool"] for p in json.loads(pools.stdout)}


@pytest.mark.parametrize(("dag", "calls", "says"), [
    ({"is_paused": False, "next_dagrun_logical_date": "2026-10-01T20:00:00Z"},
     ["dry_run", "GET", "PATCH True", "POST", "PATCH False"], "backfill #7"),
    ({"is_paused": False, "next_dagrun_logical_date": "2026-11-24T20:00:00Z"}, ["dry_run", "GET", "POST"],
     "backfill #7"),
    ({"is_paused": True, "next_dagrun_logical_date": "2026-10-01T20:00:00Z"}, ["dry_run", "GET", "POST"],
     "is paused: its runs start when you unpause it"),
], ids=["catching-up-is-held-while-the-runs-are-created", "caught-up-is-left-alone", "paused-on-purpose-stays"])
def test_a_dag_still_catching_up_is_held_while_the_backfill_is_created(airflow_api, monkeypatch, dag, calls, says):
    monkeypatch.setattr(backfill, "CATCH_UP_SETTLE", 0)
    airflow_api.plans["mamo_sync_c"] = {"dag": dag}
    api = backfill.AirflowApi(f"http://127.0.0.1:{airflow_api.server_port}", username="admin", password="s3cret-pass")
    outcome = backfill.backfill_company(api, Co("c"), date(2026, 10, 1), date(2026, 10, 31))
    assert outcome.ok and says in outcome.text

    def name(path, body):
        if path.endswith("/dry_run"):
            return "dry_run"
        if body is None:
            return "GET"
        return f"PATCH {body['is_paused']}" if "is_paused" in body else "POST"

    assert [name(path, body) for path, body, _ in airflow_api.calls[1:]] == calls
