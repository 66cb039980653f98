"""The ledger contract: what the DAGs, the mapping and the sync history need from ANY ledger, run
against every ledger's sandbox (``LEDGERS`` in ``conftest.py``: ids ``xero``, ``zoho_books``).

The worked example of ACCOUNTING.md (period 2026-11-20) is posted to each ledger and read back from
the ledger itself in a neutral form (account codes, sides, amounts): both ledgers must hold the same
journal. Bad input fails with the same exception class and the same kind of guidance everywhere,
and nothing is ever posted twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from ledger_drivers import NeutralJournal

from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerAuthError,
    LedgerLockedPeriod,
    LedgerRateLimited,
)
from mamo_revenue.hooks.ledger import JournalRequest, LedgerHook, Side
from mamo_revenue.hooks.registry import ledger_hook_class
from mamo_revenue.provider import get_provider_info

REFERENCE = "MAMO-acme-20261120"
DAY = date(2026, 11, 20)

#: ACCOUNTING.md, worked example, period 2026-11-20 (mapping codes of LEDGER_APIS.md §1.5).
WORKED_EXAMPLE = (
    ("1215", Side.DEBIT, 18491, "Mamo clearing 2026-11-20"),
    ("6110", Side.DEBIT, 864, "Processing fees 2026-11-20"),
    ("2200", Side.DEBIT, 43, "VAT recoverable on fees 2026-11-20"),
    ("4000", Side.CREDIT, 18474, "Sales 2026-11-20"),
    ("2200", Side.CREDIT, 924, "VAT payable on sales 2026-11-20"),
)
NEUTRAL = tuple(sorted((code, str(side), minor) for code, side, minor, _ in WORKED_EXAMPLE))


def worked_example(ledger, *, reference: str = REFERENCE) -> JournalRequest:
    return JournalRequest(
        reference=reference,
        journal_date=DAY,
        narration=f"{reference} Mamo revenue {DAY.isoformat()}",
        lines=tuple(ledger.line(*spec) for spec in WORKED_EXAMPLE),
    )


def books(ledger) -> Counter:
    """Net debits (+) and credits (-) per account over every journal the ledger counts."""
    net: Counter = Counter()
    for journal in ledger.journals():
        if journal.counted:
            for code, side, minor in journal.lines:
                net[code] += minor if side == "debit" else -minor
    return Counter({code: amount for code, amount in net.items() if amount})


def worked_books() -> Counter:
    net: Counter = Counter()
    for code, side, minor, _ in WORKED_EXAMPLE:
        net[code] += minor if side == Side.DEBIT else -minor
    return net


def assert_not_posted(ledger) -> None:
    """No journal the ledger counts says what the request says (a refusal posts nothing usable)."""
    assert all(not (j.counted and j.lines == NEUTRAL) for j in ledger.journals())


# --- the interface ----------------------------------------------------------------------------------


def test_every_ledger_is_one_registered_hook_with_a_connection_type(ledger):
    hook_class = ledger_hook_class(ledger.platform)
    assert issubclass(hook_class, LedgerHook) and hook_class.platform == ledger.platform
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert types[hook_class.conn_type]["hook-class-name"] == f"{hook_class.__module__}.{hook_class.__name__}"


def test_chart_of_accounts(ledger):
    accounts = ledger.hook().list_accounts()
    by_code = {a.code: a for a in accounts}
    assert {"1215", "2200", "4000", "4010", "6110"} <= {code for code, a in by_code.items() if a.active}
    assert by_code["1216"].active is False, "inactive accounts are listed, marked inactive"
    assert by_code["1215"].id == ledger.account_id("1215") and by_code["4000"].name == "Sales"
    assert len({a.id for a in accounts}) == len(accounts) and all(a.type for a in accounts)


def test_settings(ledger):
    hook = ledger.hook()
    settings = hook.get_settings()
    assert (settings.organisation_name, settings.base_currency, settings.lock_date) == (
        "Acme Trading LLC",
        "AED",
        None,
    )
    ledger.lock("2026-10-31")
    assert hook.get_settings().lock_date == date(2026, 10, 31)
    ok, message = hook.test_connection()
    assert ok and "Acme Trading LLC" in message


# --- posting, finding, voiding --------------------------------------------------------------------


def test_post_the_worked_example(ledger):
    hook = ledger.hook()
    posted = hook.post_journal(worked_example(ledger))
    assert posted.posted and posted.reference == REFERENCE and posted.url
    assert ledger.journals() == [NeutralJournal(REFERENCE, True, NEUTRAL)]
    assert books(ledger) == worked_books()


def test_both_ledgers_hold_the_same_journal(every_ledger):
    """The same period posted to Xero and to Zoho Books reads back identically: same accounts by
    mapping code, same sides, same amounts."""
    held = {}
    for name, ledger in every_ledger.items():
        ledger.hook().post_journal(worked_example(ledger))
        (journal,) = ledger.journals()
        held[name] = journal
    assert held["xero"] == held["zoho_books"] == NeutralJournal(REFERENCE, True, NEUTRAL)


def test_find_by_reference(ledger):
    hook = ledger.hook()
    assert hook.find_journal(REFERENCE) is None
    request = worked_example(ledger)
    posted = hook.post_journal(request)
    hook.post_journal(worked_example(ledger, reference="MAMO-acme-2026112"))  # a prefix of the reference
    found = hook.find_journal(REFERENCE)
    assert (found.ledger_id, found.posted, found.journal_date) == (posted.ledger_id, True, DAY)
    assert sorted((x.account_id, x.side, x.amount_minor) for x in found.lines) == sorted(
        (x.account_id, x.side, x.amount_minor) for x in request.lines
    )


def test_a_retried_post_never_duplicates(ledger):
    hook = ledger.hook()
    ledger.lose_next_post()  # the ledger saves the journal, the answer never arrives
    first = hook.post_journal(worked_example(ledger))
    again = hook.post_journal(worked_example(ledger))  # a task retry after a crash
    assert again.ledger_id == first.ledger_id
    assert ledger.journals() == [NeutralJournal(REFERENCE, True, NEUTRAL)]


def test_void_by_reference_then_post_again(ledger):
    hook = ledger.hook()
    posted = hook.post_journal(worked_example(ledger))
    voided = hook.void_journal(REFERENCE)
    assert (voided.ledger_id, voided.posted) == (posted.ledger_id, False)
    assert books(ledger) == Counter(), "a voided journal leaves nothing in the books"
    found = hook.find_journal(REFERENCE)
    assert (found.ledger_id, found.posted) == (posted.ledger_id, False)
    assert (
        hook.void_journal(REFERENCE).posted is False and books(ledger) == Counter()
    )  # voiding again: no change

    again = hook.post_journal(worked_example(ledger), idempotency_key=f"{REFERENCE}:{posted.ledger_id}")
    assert again.posted and again.ledger_id != posted.ledger_id
    assert hook.find_journal(REFERENCE).ledger_id == again.ledger_id
    assert books(ledger) == worked_books()
    assert hook.void_journal("MAMO-acme-20991231") is None


# --- bad input: one class and one kind of guidance per rule ------------------------------------------


def test_an_expired_or_revoked_grant(ledger):
    hook = ledger.hook()
    ledger.revoke_grant()
    with pytest.raises(LedgerAuthError) as caught:
        hook.post_journal(worked_example(ledger))
    assert f"Reconnect {ledger.ledger_name}" in caught.value.guidance
    assert ledger.store.needs_reconnect
    assert ledger.journals() == []


@pytest.mark.parametrize("how", ["deactivate", "delete"])
def test_an_inactive_or_deleted_mapped_account(ledger, how):
    hook = ledger.hook()
    getattr(ledger, how)("6110")
    with pytest.raises(LedgerAccountError) as caught:
        hook.post_journal(worked_example(ledger))
    assert "6110" in f"{caught.value} {caught.value.guidance}"
    assert "Processing fees to an active account" in caught.value.guidance
    assert_not_posted(ledger)
    assert ledger.posts() == 1, "a refusal is never retried"


def test_a_locked_period(ledger):
    hook = ledger.hook()
    ledger.lock("2026-11-30")
    with pytest.raises(LedgerLockedPeriod) as caught:
        hook.post_journal(worked_example(ledger))
    assert f"the period is locked in {ledger.ledger_name} before 2026-11-30" in str(caught.value)
    assert "lock date" in caught.value.guidance
    assert ledger.journals() == []


def test_voiding_in_a_locked_period(ledger):
    hook = ledger.hook()
    hook.post_journal(worked_example(ledger))
    ledger.lock("2026-11-30")
    with pytest.raises(LedgerLockedPeriod, match="2026-11-30"):
        hook.void_journal(REFERENCE)
    assert hook.find_journal(REFERENCE).posted and books(ledger) == worked_books()


def test_the_rate_limit_exhausted_for_the_day(ledger):
    hook = ledger.hook()
    ledger.limit_per_day(1)
    hook.list_accounts()  # the day's only call
    with pytest.raises(LedgerRateLimited) as caught:
        hook.post_journal(worked_example(ledger))
    assert caught.value.problem == "Daily" and caught.value.guidance
    assert ledger.journals() == []
