"""The project registers its connection types with Airflow through provider info (AIRFLOW3.md §4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mamo_revenue.provider import get_provider_info


def test_provider_info_declares_mamo_and_xero():
    info = get_provider_info()
    assert {"package-name", "name", "description", "versions"} <= set(info)
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert types["mamo"]["hook-class-name"] == "mamo_revenue.hooks.mamo.MamoHook"
    assert types["xero"]["hook-class-name"] == "mamo_revenue.hooks.xero.XeroHook"
    assert set(types["mamo"]["ui-field-behaviour"]["hidden-fields"]) == {"schema", "port", "login"}
    assert types["xero"]["ui-field-behaviour"]["relabeling"] == {
        "host": "API base URL",
        "login": "Client ID",
        "password": "Client secret",
    }
    assert set(types["xero"]["conn-fields"]) == {
        "token_url",
        "authorize_url",
        "connections_url",
        "scopes",
        "redirect_uri",
    }


@pytest.mark.airflow
def test_airflow_discovers_both_connection_types(tmp_path):
    script = """
from airflow.providers_manager import ProvidersManager
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
hooks = ProvidersManagerTaskRuntime().hooks
print("HOOK", hooks["xero"].hook_class_name, hooks["mamo"].hook_class_name)
manager = ProvidersManager()
print("FIELDS", sorted(k for k in manager.connection_form_widgets if k.startswith("extra__xero__")))
print("LABEL", manager.field_behaviours["xero"]["relabeling"]["login"], "|", manager.field_behaviours["mamo"]["relabeling"]["password"])
"""
    env = os.environ | {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HOOK mamo_revenue.hooks.xero.XeroHook mamo_revenue.hooks.mamo.MamoHook" in done.stdout
    assert (
        "FIELDS ['extra__xero__authorize_url', 'extra__xero__connections_url', 'extra__xero__redirect_uri', "
        "'extra__xero__scopes', 'extra__xero__token_url']"
    ) in done.stdout
    assert "LABEL Client ID | API key" in done.stdout

    listed = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "providers", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0 and "mamo-revenue" in listed.stdout


def test_provider_info_declares_zoho_books():
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    zoho = types["zoho_books"]
    assert zoho["hook-class-name"] == "mamo_revenue.hooks.zoho_books.ZohoBooksHook"
    assert zoho["ui-field-behaviour"]["relabeling"] == {"login": "Client ID", "password": "Client secret"}
    assert set(zoho["ui-field-behaviour"]["hidden-fields"]) == {"schema", "port", "host"}
    assert set(zoho["conn-fields"]) == {"accounts_url", "redirect_uri", "scopes", "publish"}
    assert zoho["conn-fields"]["accounts_url"]["schema"]["default"] == "https://accounts.zoho.com"
