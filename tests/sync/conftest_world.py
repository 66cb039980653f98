"""What the sync tests share: the golden worked example, the demo mapping, and the World handle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope
from mamo_sandboxes.mamo import MamoSandbox
from mamo_sandboxes.xero import XeroSandbox

GOLDEN = Path(__file__).resolve().parents[1] / "engine" / "golden" / "worked_example"
MAMO_KEY = "sk-test-acme"
MAPPING = {"clearing": "1215", "sales": "4000", "refunds": "4010", "fees": "6110", "vat_payable": "2200"}


def golden_charges(day: int) -> list[dict]:
    return json.loads((GOLDEN / f"charges_day{day}.json").read_text())["data"]


@dataclass
class World:
    engine: object
    mamo: MamoSandbox
    mamo_url: str
    xero: XeroSandbox
    xero_url: str

    def add_charges(self, charges: list[dict]) -> None:
        requests.post(f"{self.mamo_url}/_sandbox/businesses/acme/charges", json={"charges": charges},
                      timeout=10).raise_for_status()

    def patch_charge(self, charge_id: str, fields: dict) -> None:
        requests.patch(f"{self.mamo_url}/_sandbox/businesses/acme/charges/{charge_id}", json=fields,
                       timeout=10).raise_for_status()

    def journals(self, tenant: str = "a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10") -> list[dict]:
        answer = requests.get(f"{self.xero_url}/_sandbox/organisations/{tenant}/journals", timeout=10)
        answer.raise_for_status()
        return answer.json()["journals"]

    def sync_record(self, company_id: str, period_key: str):
        with session_scope(self.engine) as session:
            record = repo.get_sync_record(session, company_id, period_key)
            session.expunge(record)
            return record


