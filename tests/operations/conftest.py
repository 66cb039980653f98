"""Operations tests: real Airflow (a migrated metadata DB in this session's AIRFLOW_HOME) with the
project's DAG folder, and alert receivers (SMTP, webhook) on real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from receivers import Receivers

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ACME = {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
        "first_period": "2026-11-20", "status": "active", "ledger_platform": "xero"}


@pytest.fixture(scope="session")
def airflow_metadata(tmp_path_factory):
    """``airflow db migrate`` (a no-op when another suite did it) and a registry holding acme."""
    registry = tmp_path_factory.mktemp("ops-registry") / "registry.json"
    registry.write_text(json.dumps({"companies": [ACME]}))
    saved = os.environ.get("MAMO_REVENUE_REGISTRY")
    os.environ["MAMO_REVENUE_REGISTRY"] = str(registry)
    subprocess.run([AIRFLOW, "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield os.environ["AIRFLOW_HOME"]
    if saved is None:
        os.environ.pop("MAMO_REVENUE_REGISTRY", None)
    else:
        os.environ["MAMO_REVENUE_REGISTRY"] = saved


@pytest.fixture
def receivers(monkeypatch):
    """A local SMTP server and webhook receiver, wired in as the alert connections."""
    found = Receivers().start()
    for name, value in found.connections().items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps(value))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    yield found
    found.stop()
