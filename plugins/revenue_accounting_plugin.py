"""Airflow plugin: the "Revenue accounting" page (Browse menu) and the Mamo webhook receiver.

The page is a FastAPI app mounted at ``/revenue-accounting`` behind Airflow's login (every route needs
an authenticated user; changes need the right to edit the company's DAG); the navigation entry shows
it inside Airflow's UI. The webhook receiver at ``/mamo-webhooks/<company>`` is called by Mamo, so it
has no Airflow login and checks the company's webhook secret instead. Restart the api-server after
changing either (plugins load once per process).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from revenue_accounting.app import create_app
from revenue_accounting.security import PREFIX, WEBHOOK_PREFIX
from revenue_accounting.webhooks_app import create_webhook_app


class RevenueAccountingPlugin(AirflowPlugin):
    name = "revenue_accounting"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": PREFIX, "name": "Revenue accounting"},
        {"app": create_webhook_app(), "url_prefix": WEBHOOK_PREFIX, "name": "Mamo webhooks"},
    ]
    external_views = [
        {
            "name": "Revenue accounting",
            "href": PREFIX.lstrip("/") + "/",
            "url_route": "revenue-accounting",
            "destination": "nav",
            "category": "browse",
        }
    ]
