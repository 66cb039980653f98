"""The Revenue accounting page of the Airflow UI (an Airflow plugin) and the Mamo webhook receiver.

``revenue_accounting_plugin.py`` (beside this package) declares the plugin: the page's FastAPI app at
``/revenue-accounting`` with a navigation entry, and the webhook receiver at ``/mamo-webhooks``.
"""
