"""Airflow provider info for the project's connection types (filled in with the Xero hook)."""


def get_provider_info() -> dict:
    return {
        "package-name": "mamo-revenue",
        "name": "Mamo revenue accounting",
        "description": "Mamo extraction and ledger posting hooks.",
        "versions": ["0.1.0"],
        "connection-types": [],
    }
