"""The company DAG under real Airflow: `dag.test()` in process and `airflow dags test` on the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from worldkit import golden_charges

from mamo_revenue.dag_factory import build_company_dag

pytestmark = pytest.mark.airflow
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ACME = {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
        "first_period": "2026-11-20", "status": "active", "ledger_platform": "xero"}  # as tests/airflow/conftest.py registers it


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_a_manual_run_takes_its_period_from_the_run_configuration(airflow_db, world, acme):
    world.add_charges(golden_charges(1))
    dag_run = build_company_dag(ACME).test(run_conf={"period": "2026-11-20"})
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == dict.fromkeys(("extract", "build", "validate", "post"), "success")
    [journal] = [j for j in world.journals() if j["Narration"].startswith("MAMO-acme-20261120 ")]
    assert journal["Status"] == "POSTED"
    assert world.sync_record("acme", "20261120").ledger_journal_id == journal["ManualJournalID"]


def test_a_scheduled_run_takes_its_period_from_the_data_interval(airflow_db, world, acme):
    world.add_charges(golden_charges(1))
    dubai = ZoneInfo("Asia/Dubai")
    dag = build_company_dag(ACME)
    dag_run = dag.test(logical_date=datetime(2026, 11, 21, tzinfo=dubai))
    assert str(dag_run.state) == "success", task_states(dag_run)
    # no run configuration: the period is the data interval, one whole day in the company's zone
    assert (dag_run.data_interval_start, dag_run.data_interval_end) == (
        datetime(2026, 11, 20, tzinfo=dubai), datetime(2026, 11, 21, tzinfo=dubai))
    assert world.sync_record("acme", "20261120").status == "posted"


def test_a_bad_charge_fails_the_run_at_extract_and_posts_nothing(airflow_db, world, acme):
    charges = golden_charges(1)
    world.add_charges(charges)
    world.patch_charge(charges[1]["id"], {"amount": "12.345"})
    dag_run = build_company_dag(ACME).test(run_conf={"period": "2026-11-20"})
    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert states["extract"] == "failed" and states["post"] in ("upstream_failed", "None")
    record = world.sync_record("acme", "20261120")
    assert record.status == "failed" and charges[1]["id"] in record.error_message
    assert world.journals() == []


def test_airflow_dags_test_on_the_cli_posts_once(airflow_db, world, acme):
    world.add_charges(golden_charges(1))
    for _ in range(2):
        done = subprocess.run([AIRFLOW, "dags", "test", "mamo_sync_acme", "-c", json.dumps({"period": "2026-11-20"})],
                              env=os.environ.copy(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "already posted" in done.stdout + done.stderr
    posted = [j for j in world.journals() if j["Narration"].startswith("MAMO-acme-20261120 ")]
    assert len(posted) == 1
