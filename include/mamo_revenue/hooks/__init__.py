"""Airflow hooks: Mamo, and one hook per ledger behind ``LedgerHook``."""
