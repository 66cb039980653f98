"""Every DAG file imports cleanly, builds one DAG per registry entry, and parses without I/O."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"

COMPANIES = [
    {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
     "first_period": "2026-11-01", "status": "active", "ledger_platform": "xero"},
    {"id": "beta", "name": "Beta Boutique", "timezone": "Europe/London", "frequency": "weekly",
     "first_period": "2026-11-02", "status": "active", "ledger_platform": "xero"},
    {"id": "gone", "name": "Gone Ltd", "timezone": "Asia/Dubai", "frequency": "daily",
     "first_period": "2026-10-01", "status": "disconnected", "ledger_platform": "xero"},
]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"companies": list(reversed(COMPANIES))}))
    monkeypatch.setenv("MAMO_REVENUE_REGISTRY", str(path))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Parsing must not open a socket: no database, no API."""
    def refuse(self, address):
        raise AssertionError(f"DAG parsing opened a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    # a product DB or metadata DB that is down must not matter either
    monkeypatch.setenv("AIRFLOW_CONN_MAMO_REVENUE_DB", "postgresql://nobody@127.0.0.1:1/nothing")


@pytest.fixture
def dagbag(registry, no_network):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_company_plus_registry_dag(dagbag):
    assert set(dagbag.dag_ids) == {"mamo_sync_acme", "mamo_sync_beta", "mamo_sync_gone", "mamo_registry",
                                   "mamo_deadlines"}


@pytest.mark.parametrize("dag_id", ["mamo_sync_acme", "mamo_sync_beta", "mamo_sync_gone"])
def test_company_dag_shows_the_pipeline(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert [t.task_id for t in dag.topological_sort()] == ["extract", "build", "validate", "post"]
    assert "mamo-revenue" in dag.tags and "xero" in dag.tags
    assert dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.owner == "finance-data"
        assert t.retries >= 1
        assert t.on_failure_callback, f"{t.task_id} has no failure callback"
        assert t.retry_policy is not None


def test_schedule_follows_frequency_and_time_zone(dagbag):
    daily, weekly = dagbag.dags["mamo_sync_acme"], dagbag.dags["mamo_sync_beta"]
    assert (daily.timetable.expression, str(daily.timetable.timezone)) == ("0 0 * * *", "Asia/Dubai")
    assert (weekly.timetable.expression, str(weekly.timetable.timezone)) == ("0 0 * * 1", "Europe/London")
    assert daily.catchup is True


def test_inactive_company_keeps_its_dag_but_schedules_nothing(dagbag):
    dag = dagbag.dags["mamo_sync_gone"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.timetable.can_be_scheduled is False


def test_missing_registry_means_no_company_dags(tmp_path, monkeypatch, no_network):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MAMO_REVENUE_REGISTRY", str(tmp_path / "absent.json"))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"mamo_registry", "mamo_deadlines"}


def test_registry_order_does_not_change_the_dags(registry, no_network):
    from mamo_revenue.dag_factory import build_dags

    forward = build_dags(sorted(COMPANIES, key=lambda c: c["id"]))
    backward = build_dags(list(reversed(COMPANIES)))
    assert list(forward) == sorted(forward)
    assert {k: [t.task_id for t in v.tasks] for k, v in forward.items()} == \
        {k: [t.task_id for t in v.tasks] for k, v in backward.items()}
