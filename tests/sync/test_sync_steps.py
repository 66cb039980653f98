"""The four sync steps end to end: Mamo sandbox → PostgreSQL product DB → Xero sandbox.

The worked example of ACCOUNTING.md posts to the fils; re-runs, crashes after the ledger
accepted a journal, concurrent runs and bad input never post twice or half-way.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from worldkit import GOLDEN, MAPPING, golden_charges

from mamo_revenue import errors, sync
from mamo_revenue.sync import RunInfo


def run_period(company: str, period: str, run_id: str) -> dict:
    """extract → build → validate → post, as the DAG chains them."""
    info = RunInfo(run_id=run_id, explicit_period=period)
    result = sync.extract_step(company, info)
    for step in (sync.build_step, sync.validate_step, sync.post_step):
        result = step(company, result, info)
    return result


def journal_lines(journal: dict) -> list[tuple[str, str]]:
    """(account code, signed amount) per line, as Xero holds them."""
    return sorted((line["AccountCode"], f"{Decimal(str(line['LineAmount'])):.2f}") for line in journal["JournalLines"])


def expected_lines(period: str) -> list[tuple[str, str]]:
    fallback = {"vat_refunds": "vat_payable", "vat_recoverable": "vat_payable"}
    golden = json.loads((GOLDEN / f"journal_{period}.json").read_text())
    lines = []
    for line in golden["lines"]:
        code = MAPPING[fallback.get(line["category"], line["category"])]
        amount = Decimal(line["amount"]) * (1 if line["side"] == "debit" else -1)
        lines.append((code, f"{amount:.2f}"))
    return sorted(lines)


def posted_journals(world, reference: str) -> list[dict]:
    return [j for j in world.journals() if j["Narration"].split()[0] == reference and j["Status"] == "POSTED"]


def test_worked_example_posts_both_periods_to_the_fils(world, acme):
    world.add_charges(golden_charges(1))
    first = run_period(acme, "2026-11-20", "run-1")
    assert first["state"] == "posted" and first["reference"] == "MAMO-acme-20261120"
    [journal] = posted_journals(world, "MAMO-acme-20261120")
    assert journal_lines(journal) == expected_lines("2026-11-20")
    assert journal["ManualJournalID"] == first["ledger_journal_id"]

    c1 = next(c for c in golden_charges(2) if c["id"].endswith("C1000000001"))
    world.patch_charge(c1["id"], {"status": c1["status"], "refund_amount": c1["refund_amount"],
                                  "refund_status": c1["refund_status"]})
    second = run_period(acme, "2026-11-21", "run-2")
    assert second["state"] == "posted"
    [journal] = posted_journals(world, "MAMO-acme-20261121")
    assert journal_lines(journal) == expected_lines("2026-11-21")
    record = world.sync_record(acme, "20261121")
    assert record.status == "posted" and record.ledger_journal_id == journal["ManualJournalID"]


def test_a_rerun_of_a_posted_period_posts_nothing(world, acme):
    world.add_charges(golden_charges(1))
    run_period(acme, "2026-11-20", "run-1")
    again = run_period(acme, "2026-11-20", "run-2")
    assert again["state"] == "already_done" and again["status"] == "posted"
    assert len(posted_journals(world, "MAMO-acme-20261120")) == 1


def test_a_journal_the_ledger_accepted_before_a_crash_is_recorded_not_reposted(world, acme):
    world.add_charges(golden_charges(1))
    info = RunInfo(run_id="run-crash", explicit_period="2026-11-20")
    validated = sync.validate_step(acme, sync.build_step(acme, sync.extract_step(acme, info), info), info)
    # The worker posts, the ledger accepts, the worker dies before recording it:
    engine = world.engine
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.hooks.ledger import JournalRequest

    journal = sync.journal_from_dict(validated["journal"])
    with session_scope(engine) as session:
        mapping = repo.get_mappings(session, acme)
        company = repo.require_company(session, acme)
        session.expunge(company)
    ledger = sync.ledger_hook_for(company, engine)
    ledger.post_journal(JournalRequest(journal.reference, journal.journal_date, journal.narration,
                                       tuple(sync._ledger_lines(journal, mapping))))
    # Airflow retries the task (same run id):
    result = sync.post_step(acme, validated, info)
    assert result["state"] == "posted" and "found already posted" in result["how"]
    assert len(posted_journals(world, "MAMO-acme-20261120")) == 1
    assert world.sync_record(acme, "20261120").status == "posted"


def test_two_runs_of_one_period_at_once_post_once(world, acme):
    world.add_charges(golden_charges(1))
    outcomes: list[object] = []

    def attempt(run_id: str) -> None:
        try:
            outcomes.append(run_period(acme, "2026-11-20", run_id)["state"])
        except errors.PeriodBusy as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("posted") == 1, outcomes
    assert all(o == "posted" or o == "already_done" or isinstance(o, errors.PeriodBusy) for o in outcomes)
    assert len(posted_journals(world, "MAMO-acme-20261120")) == 1


def test_a_malformed_charge_fails_its_period_naming_it_and_a_rerun_after_the_fix_posts_once(world, acme):
    charges = golden_charges(1)
    bad = next(c for c in charges if c["id"].endswith("C2000000002"))
    world.add_charges(charges)
    world.patch_charge(bad["id"], {"settlement_fee": "AED 2.5.2"})
    with pytest.raises(errors.ChargeDataError) as caught:
        run_period(acme, "2026-11-20", "run-1")
    message = str(caught.value)
    for part in ("acme", "2026-11-20", bad["id"], "settlement_fee"):
        assert part in message
    record = world.sync_record(acme, "20261120")
    assert record.status == "failed" and record.error_class == "ChargeDataError" and record.guidance
    assert posted_journals(world, "MAMO-acme-20261120") == []

    world.patch_charge(bad["id"], {"settlement_fee": bad["settlement_fee"]})
    assert run_period(acme, "2026-11-20", "run-2")["state"] == "posted"
    [journal] = posted_journals(world, "MAMO-acme-20261120")
    assert journal_lines(journal) == expected_lines("2026-11-20")


def test_an_unmapped_category_fails_validation_with_every_problem_and_posts_nothing(world, acme):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(world.engine) as session:
        repo.set_mapping(session, acme, "fees", None)
        repo.set_mapping(session, acme, "clearing", None)
    world.add_charges(golden_charges(1))
    with pytest.raises(errors.JournalValidationError) as caught:
        run_period(acme, "2026-11-20", "run-1")
    assert [p.rule for p in caught.value.problems] == ["mapped", "mapped"]
    assert "fees" in str(caught.value) and "clearing" in str(caught.value)
    assert world.sync_record(acme, "20261120").status == "failed"
    assert posted_journals(world, "MAMO-acme-20261120") == []


def test_a_period_without_activity_posts_nothing_and_succeeds(world, acme):
    world.add_charges(golden_charges(1))
    result = run_period(acme, "2026-11-22", "run-1")
    assert result["state"] == "nothing_to_post"
    assert world.sync_record(acme, "20261122").status == "nothing_to_post"
    assert world.journals() == []


def test_a_refund_mamo_announced_after_the_period_waits_for_its_own_period(world, acme):
    """Polling sees the refund when 21 November is synced, but the webhook says it happened on the 22nd
    (Dubai time): it is recorded, and posted, in 2026-11-22, exactly once."""
    from datetime import UTC, datetime

    from mamo_revenue import webhooks
    from mamo_revenue.db.session import session_scope

    world.add_charges(golden_charges(1))
    run_period(acme, "2026-11-20", "run-1")
    c1 = next(c for c in golden_charges(2) if c["id"].endswith("C1000000001"))
    world.patch_charge(c1["id"], {"status": c1["status"], "refund_amount": c1["refund_amount"],
                                  "refund_status": c1["refund_status"]})
    delivery = json.dumps({**c1, "event_type": "charge.refunded"}).encode()
    with session_scope(world.engine) as session:  # 2026-11-22 00:30 in Dubai
        assert webhooks.record(session, acme, webhooks.parse_delivery(delivery),
                               now=datetime(2026, 11, 21, 20, 30, tzinfo=UTC))

    assert run_period(acme, "2026-11-21", "run-2")["state"] == "posted"
    [day2] = posted_journals(world, "MAMO-acme-20261121")
    assert MAPPING["refunds"] not in {code for code, _ in journal_lines(day2)}, "the refund is not the 21st's"

    assert run_period(acme, "2026-11-22", "run-3")["state"] == "posted"
    [day3] = posted_journals(world, "MAMO-acme-20261122")
    assert sorted(journal_lines(day3)) == sorted([
        (MAPPING["refunds"], "20.00"), (MAPPING["vat_payable"], "1.00"), (MAPPING["clearing"], "-21.00")])


def test_a_refund_announced_within_the_period_is_recorded_by_its_run(world, acme):
    from datetime import UTC, datetime

    from mamo_revenue import webhooks
    from mamo_revenue.db.session import session_scope

    world.add_charges(golden_charges(1))
    run_period(acme, "2026-11-20", "run-1")
    c1 = next(c for c in golden_charges(2) if c["id"].endswith("C1000000001"))
    world.patch_charge(c1["id"], {"status": c1["status"], "refund_amount": c1["refund_amount"],
                                  "refund_status": c1["refund_status"]})
    delivery = json.dumps({**c1, "event_type": "payment.refunded"}).encode()
    with session_scope(world.engine) as session:  # 2026-11-21 13:00 in Dubai
        webhooks.record(session, acme, webhooks.parse_delivery(delivery), now=datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    run_period(acme, "2026-11-21", "run-2")
    [day2] = posted_journals(world, "MAMO-acme-20261121")
    assert (MAPPING["refunds"], "20.00") in journal_lines(day2)


def test_a_rate_limit_pause_is_not_recorded_as_a_failure(world, acme):
    """The task pauses until the ledger's limit resets (Airflow reschedules it): the period stays claimed by
    its run, never failed, so neither the page nor the deadline check calls it a failure."""
    from mamo_revenue.periods import Period

    info = RunInfo(run_id="run-pause", explicit_period="2026-11-20")
    sync.extract_step(acme, info)  # claims the period
    with pytest.raises(errors.LedgerRateLimited):
        with sync.recording_failure(world.engine, acme, Period.parse("2026-11-20", "daily"), "post", "run-pause"):
            raise errors.LedgerRateLimited("Xero's daily limit is used up", problem="Daily")
    record = world.sync_record(acme, "20261120")
    assert record.status == "running" and record.error_class is None
