"""Airflow's REST API, called as the person using the page (their own token), never as the plugin.

So Airflow applies the person's own permissions to every run and backfill, and its audit log names
them. The token is sent only to Airflow's API and is never rendered, stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from mamo_revenue.backfill import error_detail

TIMEOUT = 20


class AirflowApiError(Exception):
    """Airflow refused or failed a call; ``message`` is for the page, ``guidance`` says what to do."""

    def __init__(self, message: str, guidance: str = "", status: int | None = None):
        super().__init__(message)
        self.message, self.guidance, self.status = message, guidance, status


@dataclass(frozen=True)
class AirflowApi:
    base_url: str  # e.g. http://127.0.0.1:8080 (Airflow's root)
    token: str | None

    def _call(self, method: str, path: str, *, json: dict | None = None, what: str) -> dict:
        if not self.token:
            raise AirflowApiError(f"{what}: no Airflow login on this request", "Log in to Airflow again.", 401)
        try:
            response = requests.request(
                method, f"{self.base_url}/api/v2{path}", json=json, timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"})
        except requests.RequestException as exc:
            raise AirflowApiError(f"{what}: Airflow's API did not answer ({type(exc).__name__})",
                                  "Check that the Airflow API server is reachable, then try again.") from None
        if response.status_code < 300:
            return response.json() if response.content else {}
        detail = error_detail(response)
        status = response.status_code
        if status == 404:
            raise AirflowApiError(
                f"{what}: Airflow does not know the company's DAG yet ({detail})",
                "Airflow reads the company list every few seconds to a few minutes after a change; "
                "try again in a minute.", status)
        if status in (401, 403):
            raise AirflowApiError(f"{what}: Airflow refused ({detail})",
                                  "Your Airflow role may not do this; ask an Airflow admin.", status)
        raise AirflowApiError(f"{what}: Airflow answered HTTP {status} ({detail})",
                              "Read the message; if it persists, check the API server's log.", status)

    def dag(self, dag_id: str) -> dict | None:
        try:
            return self._call("GET", f"/dags/{dag_id}", what="reading the DAG")
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def trigger(self, dag_id: str, period: str, *, note: str) -> dict:
        """A manual run of ``period`` (no logical date: the run's configuration names the period)."""
        return self._call("POST", f"/dags/{dag_id}/dagRuns", what=f"starting a run of {period}",
                          json={"logical_date": None, "conf": {"period": period}, "note": note})

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/dags/{dag_id}?update_mask=is_paused", json={"is_paused": paused},
                   what="pausing the DAG" if paused else "resuming the DAG")

