"""Engine benchmark: 1,000,000 charges → derive_events → build_journal → validate_journal.

The engine's input is the charge state frame exactly as the product DB hands it over
(``db.snapshots.load_charge_state_frame``): each snapshot row joined, in SQL, with what is already
recorded for its charge (``sale_recorded``, ``fee_recorded``, ``fee_vat_recorded``,
``refund_recorded_minor``). Here the driver's rows are synthesised with numpy, one Python list per
column of fresh objects (a new ``str`` per row, Python ints, ``datetime``s, None for NULL), and
turned into the frame by ``events.typed_frame``, the loader's own conversion (timed apart as
``load``: it is the loader's work, not the engine's). Two scenarios:

* ``steady``: a daily run in steady state. The charges span 90 days (Mamo's list has no date
  filter, so a run sees months of charges); every earlier day is closed and its events are
  recorded (≈ 2.6 M events, summarised per charge by the join). The run finds the day's sales,
  late captures, refunds rising on old charges.
* ``period``: every charge belongs to the period being synced and nothing is recorded yet (the
  first run of a very large period, or a backfill): the most events a run can emit.

The engine is timed against ``baseline_totals``, a plain per-charge Python loop of the same
policy over the same frame, and the two must agree on every journal total and event count. The
engine's peak memory is measured in a fresh subprocess: the resident-set high-water mark
(``VmHWM``, reset through ``/proc/self/clear_refs`` after the data is built) minus the resident set
before the run, and ``tracemalloc``'s peak; the larger is reported.

    python benchmarks/bench_engine.py [--charges N] [--scenario steady|period|both] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from mamo_revenue.charges import parse_charge
from mamo_revenue.events import CHARGE_STATE_COLUMNS, derive_events, typed_frame
from mamo_revenue.hooks.ledger import LedgerAccount, LedgerSettings
from mamo_revenue.journal import Category, MappedAccount, build_journal
from mamo_revenue.money import div_round_half_up, vat_rate_fraction
from mamo_revenue.periods import Frequency, Period
from mamo_revenue.validation import raise_for_problems, validate_journal

COMPANY, BASE, VAT = "bench", "AED", Decimal("0.05")
PERIOD = Period(date(2026, 11, 20), Frequency.DAILY)
HISTORY_DAYS = 90
TIME_LIMIT_S, MEMORY_LIMIT_MIB, RATIO_TARGET = 2.0, 1024, 20.0
CAPTURED = ("captured", "refund_initiated", "refunded")


# --- synthetic data ---------------------------------------------------------------------------------


def _fresh(values: np.ndarray, null: np.ndarray | None = None) -> list:
    """A driver's column: a new Python object per row (``astype(object)`` makes a new ``str``
    from each fixed-width numpy string), None where NULL."""
    column = values.astype(object)
    if null is not None:
        column[null] = None
    return column.tolist()


def make_rows(n: int, *, scenario: str, seed: int = 20261120) -> tuple[dict[str, list], set[str], int]:
    """The rows ``load_charge_state_frame`` would fetch, one list per column, sorted by created date;
    the closed period keys; and how many recorded events the join summarised.

    ``n`` charges: 80 % captured, 7 % refunded or refund pending, 10 % failed, 3 % processing;
    85 % AED and 15 % USD; 1 % created on the day after the period (never taken); 0.05 % of the
    earlier days' charges have a problem. Recorded (steady): every earlier day is closed and its
    sales, fees and fee VAT are recorded except 0.2 % (captured late: taken now); a refunded
    charge has nothing, half or all of today's cumulative refund recorded already.
    """
    rng = np.random.default_rng(seed)
    if scenario == "steady":
        day = rng.integers(-HISTORY_DAYS + 1, 1, n)
    else:
        day = np.zeros(n, dtype=np.int64)
    day[rng.random(n) < 0.01] = 1
    seconds = rng.integers(0, 86_400, n)
    created = np.sort(
        np.datetime64(PERIOD.first_day, "ns") + (day * 86_400 + seconds).astype("timedelta64[s]")
    )
    day = (created - np.datetime64(PERIOD.first_day, "ns")) // np.timedelta64(1, "D")

    status = rng.choice(
        np.array(["captured", "refunded", "refund_initiated", "failed", "processing"]),
        n,
        p=[0.80, 0.05, 0.02, 0.10, 0.03],
    )
    usd = rng.random(n) < 0.15
    amount = rng.integers(100, 250_000, n).astype(np.int64)
    gross_aed = np.where(usd, (amount * 3673 + 500) // 1000, amount)
    fee = (gross_aed * 29 + 500) // 1000 + 100
    fee_vat = (fee * 5 + 50) // 100
    settlement = gross_aed - fee - fee_vat
    settled = np.isin(status, CAPTURED)
    refund = np.where(
        np.isin(status, ["refunded", "refund_initiated"]), amount * rng.integers(1, 101, n) // 100, 0
    )
    problems = np.full(n, "", dtype="U64")
    problems[(day < 0) & (rng.random(n) < 0.0005)] = "settlement_date: '31/02/2026' is not DD/MM/YYYY"

    recorded_rng = np.random.default_rng(7)
    earlier = (day < 0) & settled & (problems == "")
    taken = earlier & (recorded_rng.random(n) >= 0.002)
    share = recorded_rng.choice([0, 1, 2], n, p=[0.2, 0.3, 0.5])  # none, half, all recorded
    refund_recorded = np.where(
        taken & (refund > 0), np.where(share == 2, refund, refund // 2 * (share == 1)), 0
    )
    closed = {(PERIOD.first_day + timedelta(days=int(d))).strftime("%Y%m%d") for d in range(-HISTORY_DAYS, 0)}
    recorded_events = 3 * int(taken.sum()) + int((refund_recorded > 0).sum())

    def _with_nulls(values):
        column = values.astype(object)
        column[~settled] = None
        return column.tolist()

    rows = {
        "charge_id": [f"MPB-CHRG-{i:010X}" for i in rng.permutation(n)],
        "status": _fresh(status),
        "created_local": created.astype("datetime64[us]").tolist(),
        "currency": _fresh(np.where(usd, "USD", "AED")),
        "amount_minor": amount.tolist(),
        "refund_minor": refund.astype(np.int64).tolist(),
        "settlement_currency": _fresh(np.full(n, "AED"), ~settled),
        "settlement_minor": _with_nulls(settlement),
        "fee_minor": _with_nulls(fee),
        "fee_vat_minor": _with_nulls(fee_vat),
        "fee_currency": _fresh(np.full(n, "AED"), ~settled),
        "problems": _fresh(problems),
        "sale_recorded": taken.astype(np.int64).tolist(),  # the SQL gives 0/1 (MAX of a CASE)
        "fee_recorded": taken.astype(np.int64).tolist(),
        "fee_vat_recorded": taken.astype(np.int64).tolist(),
        "refund_recorded_minor": refund_recorded.astype(np.int64).tolist(),
    }
    assert tuple(rows) == CHARGE_STATE_COLUMNS
    return rows, closed, recorded_events


def make_charge_states(n: int, *, scenario: str) -> tuple[pd.DataFrame, set[str], int, float]:
    """(charge state frame as the loader returns it, closed keys, recorded events, loader seconds)."""
    rows, closed, recorded_events = make_rows(n, scenario=scenario)
    gc.collect()
    started = time.perf_counter()
    frame = typed_frame(rows)
    loaded = time.perf_counter() - started
    return frame, closed, recorded_events, loaded


def ledger_fixture():
    mapping = {
        c.value: MappedAccount(f"acc-{c.value}", f"{100 + i}", c.value) for i, c in enumerate(Category)
    }
    accounts = [LedgerAccount(m.account_id, m.code, m.name, "REVENUE", True) for m in mapping.values()]
    settings = LedgerSettings("Bench Org", BASE, date(2026, 10, 31))
    return mapping, accounts, settings


# --- the engine and the baseline ----------------------------------------------------------------------


def run_engine(charges, closed, ledger, phases: dict | None = None):
    """derive_events → build_journal → validate_journal; ``phases`` gets each step's seconds."""
    mapping, accounts, settings = ledger
    clock = time.perf_counter()
    events = derive_events(charges, period=PERIOD, base_currency=BASE, closed_periods=closed, company=COMPANY)
    derived = time.perf_counter()
    journal = build_journal(events, company_id=COMPANY, period=PERIOD, sales_vat_rate=VAT)
    built = time.perf_counter()
    problems = validate_journal(
        journal, mapping=mapping, accounts=accounts, settings=settings, base_currency=BASE
    )
    raise_for_problems(journal, problems)
    if phases is not None:
        phases.update(
            derive_s=derived - clock, build_s=built - derived, validate_s=time.perf_counter() - built
        )
    return events, journal


def baseline_totals(charges: pd.DataFrame, closed: set[str]) -> dict[str, int]:
    """The same policy as ``derive_events`` + ``build_journal``, one charge at a time in plain Python.

    It reads the same charge state frame (one ``tolist`` per column) and, like the engine, produces
    the new event rows (charge, kind, period, amount, cumulative) and the journal totals, with the
    scalar helpers of ``money``; errors are raised as the engine would (without the long messages).
    """
    start, end, key = PERIOD.local_start, PERIOD.local_end, PERIOD.key
    closed_by_day: dict[date, bool] = {}
    vat_num, vat_den = vat_rate_fraction(VAT)
    events: list[tuple] = []
    totals = dict.fromkeys(("G", "Gv", "F", "Fv", "R", "Rv", "sale_events", "refund_events"), 0)
    created = charges["created_local"].to_numpy().astype("datetime64[us]").tolist()
    columns = [charges[c].tolist() for c in CHARGE_STATE_COLUMNS if c != "created_local"]
    for row_created, row in zip(created, zip(*columns, strict=True), strict=True):
        (charge_id, status, currency, amount, refund, s_cur, settlement, fee, fee_vat, fee_cur, problems,
         sale_done, fee_done, vat_done, before) = row  # fmt: skip
        if problems and start <= row_created < end:
            raise ValueError(f"bad charge {charge_id}")
        if row_created >= end or status not in CAPTURED or problems:
            continue
        if row_created >= start:
            takes_once = True
        else:
            day = row_created.date()
            if day not in closed_by_day:
                closed_by_day[day] = Period.containing(day, PERIOD.frequency).key in closed
            takes_once = closed_by_day[day]
        in_base = currency == BASE
        if in_base:
            gross = amount
        elif settlement is pd.NA or fee is pd.NA or fee_vat is pd.NA:
            gross = None
        else:
            gross = settlement + fee + fee_vat
        if refund < before:
            raise ValueError(f"refund went down {charge_id}")
        new_sale = takes_once and gross is not None and gross > 0 and not sale_done
        rising = gross is not None and refund > before
        if (new_sale or rising) and not in_base and (s_cur != BASE or fee_cur != BASE):
            raise ValueError(f"currency {charge_id}")
        if new_sale:
            events.append((charge_id, "sale", key, gross, None))
            totals["G"] += gross
            totals["Gv"] += div_round_half_up(gross * vat_num, vat_den + vat_num)
            totals["sale_events"] += 1
        if takes_once:
            for kind, value, done, total in (
                ("fee", fee, fee_done, "F"),
                ("fee_vat", fee_vat, vat_done, "Fv"),
            ):
                if value is not pd.NA and value > 0 and not done:
                    if fee_cur != BASE:
                        raise ValueError(f"currency {charge_id}")
                    events.append((charge_id, kind, key, value, None))
                    totals[total] += value
        if rising:
            if in_base:
                increase = refund - before
            else:
                increase = div_round_half_up(refund * gross, amount) - div_round_half_up(
                    before * gross, amount
                )
            if increase > 0:
                events.append((charge_id, "refund", key, increase, refund))
                totals["R"] += increase
                totals["Rv"] += div_round_half_up(increase * vat_num, vat_den + vat_num)
                totals["refund_events"] += 1
    totals["events"] = len(events)
    return totals


# --- measuring ------------------------------------------------------------------------------------------

#: MAMO_API.md Example 2 (webhook) and an Example 1-style list item: the two wire shapes.
_RAW_CHARGES = (
    '{"status": "captured", "id": "MPB-CHRG-D65B203ABD", "amount": 33.99, "amount_currency": "AED", '
    '"refund_amount": 0, "refund_status": "No refund", "custom_data": {}, "created_date": "2023-12-25-14-38-53", '
    '"subscription_id": null, "settlement_amount": "31.99", "settlement_currency": "AED", '
    '"settlement_date": "2024-01-01", "settlement_fee": "AED 1.90", "settlement_vat": "AED 0.10", '
    '"external_id": null, "error_code": null, "error_message": null, "event_type": "charge.succeeded"}',
    '{"status": "refunded", "id": "MPB-CHRG-E0CE93E071", "amount": 100, "amount_currency": "AED", '
    '"refund_amount": "20.0", "refund_status": "success", "custom_data": {"val1": true}, '
    '"created_date": "2023-05-31-11-18-57", "settlement_amount": 96.64, "settlement_currency": "AED", '
    '"settlement_date": "05/06/2023", "settlement_fee": "AED 3.20", "settlement_vat": "AED 0.16"}',
)


def bench_parse(count: int = 100_000) -> dict:
    """parse_charge alone, on already-decoded JSON (the hook's share of the ≥ 20,000 charges/s budget)."""
    raws = [json.loads(text, parse_float=Decimal) for text in _RAW_CHARGES] * (count // len(_RAW_CHARGES))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for raw in raws:
            parse_charge(raw)
        best = min(best, time.perf_counter() - started)
    return {"charges": len(raws), "us_per_charge": round(best / len(raws) * 1e6, 2)}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(charges: int, scenario: str) -> dict:
    """In this (fresh) process: the engine's peak memory over the data it is given.

    Two readings: the resident-set high-water mark (``VmHWM``, reset through
    ``/proc/self/clear_refs`` once the data is built) minus the resident set before the run, which
    under-counts when the run reuses memory the allocator kept; and ``tracemalloc``'s peak of
    the bytes the run allocates (numpy and pandas buffers included). The larger one is reported.
    """
    frame, closed, _, _ = make_charge_states(charges, scenario=scenario)
    ledger = ledger_fixture()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident set
    before = _rss_kib("VmRSS")
    run_engine(frame, closed, ledger)
    peak = _rss_kib("VmHWM")
    gc.collect()
    tracemalloc.start()
    run_engine(frame, closed, ledger)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "data_rss_mib": before / 1024,
        "rss_above_data_mib": (peak - before) / 1024,
        "traced_peak_mib": traced_peak / 2**20,
        "process_peak_rss_mib": peak / 1024,
    }


def bench(charges: int, scenario: str, repeats: int) -> dict:
    frame, closed, recorded_events, load_time = make_charge_states(charges, scenario=scenario)
    ledger = ledger_fixture()
    engine_times, best_phases = [], {}
    for _ in range(repeats):
        gc.collect()
        phases: dict = {}
        started = time.perf_counter()
        events, journal = run_engine(frame, closed, ledger, phases)
        engine_times.append(time.perf_counter() - started)
        if engine_times[-1] == min(engine_times):
            best_phases = phases
    baseline_times = []
    for _ in range(repeats):  # the loop gets the same best-of-N as the engine
        gc.collect()
        started = time.perf_counter()
        expected = baseline_totals(frame, closed)
        baseline_times.append(time.perf_counter() - started)
    baseline_time = min(baseline_times)
    got = {key: journal.totals[key] for key in expected}
    if got != expected:
        raise AssertionError(f"engine and baseline disagree: {got} != {expected}")
    probe = subprocess.run(
        [sys.executable, __file__, "--memory-probe", "--charges", str(charges), "--scenario", scenario],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    memory = json.loads(probe.stdout)
    engine = min(engine_times)
    return {
        "scenario": scenario,
        "charges": charges,
        "recorded_events": recorded_events,
        "loader_frame_s": round(load_time, 3),
        "new_events": len(events),
        "journal_lines": len(journal.lines),
        "engine_s": round(engine, 3),
        "engine_runs_s": [round(t, 3) for t in engine_times],
        "engine_phases_s": {k: round(v, 3) for k, v in best_phases.items()},
        "baseline_s": round(baseline_time, 3),
        "baseline_runs_s": [round(t, 3) for t in baseline_times],
        "speedup": round(baseline_time / engine, 1),
        "engine_peak_mib": round(max(memory["rss_above_data_mib"], memory["traced_peak_mib"]), 1),
        "engine_rss_above_data_mib": round(memory["rss_above_data_mib"], 1),
        "engine_traced_peak_mib": round(memory["traced_peak_mib"], 1),
        "process_peak_rss_mib": round(memory["process_peak_rss_mib"], 1),
        "data_rss_mib": round(memory["data_rss_mib"], 1),
        "within_time": engine <= TIME_LIMIT_S,
        "within_memory": max(memory["rss_above_data_mib"], memory["traced_peak_mib"]) <= MEMORY_LIMIT_MIB,
        "totals_equal": True,
        "totals": {k: v for k, v in journal.totals.items() if k in ("G", "Gv", "F", "Fv", "R", "Rv")},
    }


def _table(results: list[dict], parse: dict) -> str:
    out = [
        f"{'scenario':<8} {'charges':>9} {'recorded':>9} {'new events':>10} {'engine s':>8} {'loop s':>7} "
        f"{'speed-up':>8} {'peak MiB':>8}  time  memory  speed-up"
    ]
    for r in results:
        verdicts = (r["within_time"], r["within_memory"], r["speedup"] >= RATIO_TARGET)
        ok = "  ".join(f"{'ok' if v else 'NO':<4}" for v in verdicts)
        out.append(
            f"{r['scenario']:<8} {r['charges']:>9,} {r['recorded_events']:>9,} {r['new_events']:>10,} "
            f"{r['engine_s']:>8.3f} {r['baseline_s']:>7.3f} {r['speedup']:>7.1f}× {r['engine_peak_mib']:>8.1f}  {ok}"
        )
    for r in results:
        phases = ", ".join(f"{k.removesuffix('_s')} {v:.3f}" for k, v in r["engine_phases_s"].items())
        out.append(
            f"  {r['scenario']}: {phases} s; engine runs {r['engine_runs_s']} s; loop runs {r['baseline_runs_s']} s; "
            f"loader's rows → frame "
            f"{r['loader_frame_s']:.3f} s (not engine time); memory: traced peak "
            f"{r['engine_traced_peak_mib']} MiB, RSS +{r['engine_rss_above_data_mib']} MiB over the data's "
            f"{r['data_rss_mib']} MiB (process peak {r['process_peak_rss_mib']} MiB)"
        )
    out.append(f"parse_charge: {parse['us_per_charge']} µs per charge")
    out.append(f"targets: engine ≤ {TIME_LIMIT_S} s and ≤ {MEMORY_LIMIT_MIB} MiB, speed-up ≥ {RATIO_TARGET}×")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--scenario", choices=("steady", "period", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.charges, args.scenario)))
        return 0
    scenarios = ("steady", "period") if args.scenario == "both" else (args.scenario,)
    results = [bench(args.charges, s, args.repeats) for s in scenarios]
    parse = bench_parse()
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "parse_charge": parse, "results": results}, indent=2))
    else:
        print(_table(results, parse))
    return 0


if __name__ == "__main__":
    sys.exit(main())
