"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright; nothing downloads
a browser): log in to Airflow, open Revenue accounting from Airflow's UI, add a company, connect it
through the Xero sandbox's consent page, map its accounts from the dropdowns, sync a period and see it
Completed with its journal link, then disconnect. A screenshot of each step goes to
``test-artifacts/ui/`` (git-ignored)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from helpers import days_ago, new_xero_organisation, seed_charges, wait_for_record

CHROMIUM = os.environ.get("MAMO_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
FRAME = "iframe[title='Revenue accounting']"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Steps:
    """Screenshots named by step, in order."""

    def __init__(self, page, prefix: str):
        self.page, self.prefix, self.number = page, prefix, 0

    def shot(self, name: str, page=None) -> None:
        self.number += 1
        (page or self.page).screenshot(path=str(ARTIFACTS / f"{self.prefix}-{self.number:02d}-{name}.png"),
                                       full_page=True)


def log_in(page, stack, user: str, password: str, next_path: str = "/plugin/revenue-accounting"):
    page.goto(f"{stack.url}/auth/login?next={next_path.replace('/', '%2F')}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/plugin/revenue-accounting.*"))


def test_a_finance_user_adds_connects_maps_syncs_and_disconnects_a_company(stack, browser):
    key, tag = stack.new_business("Zeta Trading LLC")
    period = days_ago(1)
    seed_charges(stack, tag, period, count=9)
    name = f"Zeta Trading {uuid.uuid4().hex[:4].upper()}"
    organisation = f"{name} FZE"  # its own Xero organisation: disconnecting it cuts off no other test's company
    new_xero_organisation(stack, organisation)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    steps = Steps(page, "flow")

    log_in(page, stack, "admin", "admin")
    frame = page.frame_locator(FRAME)
    frame.get_by_role("heading", name="Revenue accounting", exact=True).wait_for()
    steps.shot("overview-inside-airflow")

    # add a company
    frame.get_by_role("link", name=re.compile("Add (a|the first) company")).first.click()
    frame.get_by_label("Company name").fill(name)
    frame.get_by_label(re.compile("Mamo API key")).fill(key)
    frame.get_by_label(re.compile("First period to sync")).fill(days_ago(2))
    steps.shot("add-company-form")
    frame.get_by_role("button", name="Check the key and add the company").click()
    frame.get_by_text("Company added. Next: connect its ledger.").wait_for()
    assert key not in frame.locator("body").inner_html()
    steps.shot("company-added")
    company_id = re.search(r"/companies/([a-z0-9_-]+)", frame.locator("a", has_text="Connect a ledger")
                           .get_attribute("href")).group(1)

    # connect through the sandbox's consent page: it refuses no frame, but real ledgers do, so the
    # page opens the consent in Airflow's whole window
    frame.get_by_role("link", name="Connect a ledger").click()
    page.wait_for_url(re.compile(rf".*/revenue-accounting/companies/{company_id}/connect$"))
    page.get_by_label("Xero").check()
    steps.shot("connect-choose-ledger")
    page.get_by_role("button", name="Continue to the ledger's sign-in").click()
    page.wait_for_url(re.compile(r".*/identity/connect/authorize.*"))
    assert page.url.startswith(stack.xero_url)
    steps.shot("xero-consent")
    page.get_by_role("button", name="Allow access").click()
    page.get_by_role("heading", name=re.compile("Which Xero organisation")).wait_for()
    steps.shot("choose-organisation")
    page.get_by_label(organisation).check()
    page.get_by_role("button", name="Connect this organisation").click()
    page.wait_for_url(re.compile(rf".*/plugin/revenue-accounting/revenue-accounting/companies/{company_id}.*"))
    frame = page.frame_locator(FRAME)
    frame.get_by_text("Ledger connected.").wait_for()
    assert frame.locator(".pill-connected").inner_text() == "Connected"
    steps.shot("connected")

    # map the accounts from the dropdowns, filled from the organisation's chart
    frame.get_by_role("link", name="Map accounts").click()
    for label, account in (("Accounts receivable / Mamo clearing", "1215 · Mamo clearing"), ("Sales", "4000 · Sales"),
                           ("Refunds (contra revenue)", "4010 · Refunds"), ("Processing fees", "6110 · Merchant fees"),
                           ("VAT payable (on sales)", "2200 · VAT")):
        frame.get_by_label(label, exact=True).select_option(label=account)
    steps.shot("mapping")
    frame.get_by_role("button", name="Save mapping").click()
    frame.get_by_text("Account mapping saved.").wait_for()
    assert "Syncing active" in frame.locator(".head").inner_text()
    steps.shot("mapped-and-active")

    # sync a period now, with a confirmation step
    stack.wait_for_dag(f"mamo_sync_{company_id}", unpaused=True)
    frame.get_by_label("Period to sync").fill(period)
    frame.get_by_role("button", name="Sync now…").click()
    frame.get_by_role("heading", name=f"Sync {period} now?").wait_for()
    steps.shot("confirm-sync")
    frame.get_by_role("button", name=f"Yes, sync {period}").click()
    frame.get_by_text("Sync requested").wait_for()
    record = wait_for_record(stack, company_id, period.replace("-", ""))
    page.reload()
    frame = page.frame_locator(FRAME)
    row = frame.locator("table.history tr.row-posted", has_text=period)
    row.wait_for()
    assert "Completed" in row.inner_text() and record.reference in row.inner_text()
    journal = row.get_by_role("link", name="Open journal")
    assert journal.get_attribute("href") == record.ledger_url
    assert frame.locator(".notice.success", has_text=f"{period} completed").count() == 1
    steps.shot("period-completed")
    with context.expect_page() as opened:
        journal.click()
    journal_page = opened.value
    journal_page.wait_for_load_state()
    assert journal_page.url == record.ledger_url
    steps.shot("journal-in-the-ledger", journal_page)
    journal_page.close()

    # disconnect, with a confirmation step
    frame.get_by_role("link", name="Disconnect").click()
    frame.get_by_role("heading", name=re.compile("Disconnect .* from Xero")).wait_for()
    steps.shot("confirm-disconnect")
    frame.get_by_role("button", name="Yes, disconnect").click()
    frame.get_by_text("Disconnected: the ledger's access was revoked").wait_for()
    assert frame.locator(".pill-disconnected").first.inner_text() == "Disconnected"
    assert frame.locator("table.history tr.row-posted", has_text=period).count() == 1  # history stays
    steps.shot("disconnected")
    context.close()


def test_a_viewer_sees_the_history_but_no_controls(stack, browser, company_factory):
    cid = company_factory()[0]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    log_in(page, stack, "viewer", "viewer", f"/plugin/revenue-accounting/revenue-accounting/companies/{cid}")
    frame = page.frame_locator(FRAME)
    frame.get_by_role("heading", name="Sync history").wait_for()
    for link in ("Connect a ledger", "Map accounts", "Sync settings", "Disconnect", "Re-sync…"):
        assert frame.get_by_role("link", name=link).count() == 0
    for button in ("Sync now…", "Backfill…", "Save secret"):
        assert frame.get_by_role("button", name=button).count() == 0
    Steps(page, "viewer").shot("company-read-only")
    context.close()
