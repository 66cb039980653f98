"""A 365-day backfill of one company on the production-shaped setup: wall time and ledger calls per period.

The stack of the production-shaped test (tests/operations/stack.py): a fresh PostgreSQL metadata DB, the
scheduler (LocalExecutor, parallelism 8), dag-processor and api-server as real processes, the sandboxes in
a process of their own (the Mamo demo business with ``--charges`` spread over the year), one company on
the Xero sandbox with Xero's real limits (60 calls a minute, 5,000 a day per tenant). Timed: from
``mamo-revenue backfill --from … --to … --company bench`` to the last run finished (start-up excluded).
Counted: the Xero sandbox's request log (``GET /_sandbox/requests``), Accounting API calls only (token
refreshes are reported apart), divided by the periods posted.

Baseline, in the same invocation: the same backfill over ``--baseline-days`` (14) on a fresh stack with this
issue's two savings switched off (``MAMO_REVENUE_LEDGER_FACTS_TTL=0``: validate reads the chart and the
organisation every period; ``MAMO_REVENUE_PRELOAD=0``: every task imports pandas and the hooks again).

Targets (issue #5): ≤ 15 minutes for 365 days, ≤ 2 ledger calls per posted period.

    .venv/bin/python benchmarks/bench_backfill.py [--days 365] [--baseline-days 14] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "operations"))

from stack import Company, Stack, days_back  # noqa: E402

TARGET_SECONDS, TARGET_CALLS = 15 * 60, 2.0
API = "/api.xro/2.0"


def _endpoint(path: str) -> str:
    rest = path[len(API):].split("?")[0].rstrip("/")
    return "/ManualJournals/{id}" if rest.startswith("/ManualJournals/") else rest


def measure(days: int, charges: int, max_active_runs: int, parallelism: int, env: dict[str, str]) -> dict:
    stack = Stack(home=Path(tempfile.mkdtemp(prefix="bench-backfill-")), companies=(Company("bench", "xero", "xero_default"),),
                  first_period=days_back(days), charges=charges, days=days, parallelism=parallelism, extra_env=env)
    try:
        started = time.perf_counter()
        stack.prepare()
        requests.delete(f"{stack.xero_url}/_sandbox/requests", timeout=30)  # the connect flow's calls are not the backfill's
        stack.launch()
        ready = time.perf_counter()
        done = stack.run("mamo-revenue", "backfill", "--from", str(days_back(days)), "--to", str(days_back(1)),
                         "--company", "bench", "--max-active-runs", str(max_active_runs))
        ids = [int(w.strip("#:")) for w in done.stdout.split() if w.startswith("#")]
        stack.wait_for_backfills(ids, timeout=3 * 3600)
        runs = stack.wait_for_runs("mamo_sync_bench", days, timeout=3600)
        wall = time.perf_counter() - ready
        log = requests.get(f"{stack.xero_url}/_sandbox/requests", timeout=60).json()["requests"]
        from mamo_revenue.db import repository as repo
        from mamo_revenue.db.session import session_scope

        with session_scope(stack.product_engine(), read_only=True) as session:
            statuses = Counter(r.status for r in repo.list_sync_records(session, "bench", limit=100_000))
        api = [r for r in log if r["path"].startswith(API)]
        kinds = Counter(f"{r['method']} {_endpoint(r['path'])}" for r in api)
        posted = statuses.get("posted", 0)
        return {
            "days": days, "charges": charges, "max_active_runs": max_active_runs, "parallelism": parallelism,
            "startup_s": round(ready - started, 1), "wall_s": round(wall, 1),
            "runs": Counter(r["state"] for r in runs), "periods": dict(statuses), "posted": posted,
            "api_calls": len(api), "api_429": sum(1 for r in api if r["status"] == 429),
            "token_calls": sum(1 for r in log if "/connect/token" in r["path"]),
            "by_kind": dict(kinds.most_common()),
            "calls_per_posted": round(len(api) / posted, 2) if posted else None,
            "calls_per_posted_2xx": round(sum(1 for r in api if r["status"] == 200) / posted, 2) if posted else None,
            "seconds_per_period": round(wall / days, 2),
        }
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--charges-per-day", type=float, default=3.0)
    parser.add_argument("--max-active-runs", type=int, default=8)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--baseline-days", type=int, default=14, help="0 skips the baseline")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this file as JSON")
    args = parser.parse_args()

    results = {}
    if args.baseline_days:
        results["baseline"] = measure(args.baseline_days, int(args.baseline_days * args.charges_per_day),
                                      args.max_active_runs, args.parallelism,
                                      {"MAMO_REVENUE_LEDGER_FACTS_TTL": "0", "MAMO_REVENUE_PRELOAD": "0"})
    results["backfill"] = measure(args.days, int(args.days * args.charges_per_day), args.max_active_runs,
                                  args.parallelism, {})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=dict))
    report(results)
    return 0


def report(results: dict) -> None:
    """The figures as docs/benchmarks.md quotes them."""
    print(f"{'':10} {'days':>5} {'posted':>6} {'wall':>8} {'s/period':>8} {'calls':>6} {'429s':>5} "
          f"{'calls/posted':>12} {'tokens':>6}")
    for name, r in results.items():
        print(f"{name:10} {r['days']:>5} {r['posted']:>6} {r['wall_s']:>7.0f}s {r['seconds_per_period']:>8.2f} "
              f"{r['api_calls']:>6} {r['api_429']:>5} {r['calls_per_posted'] or 0:>12.2f} {r['token_calls']:>6}")
        print(f"{'':10} runs {dict(r['runs'])}, periods {r['periods']}, calls {r['by_kind']}")
    main_run = results["backfill"]
    wall_target = TARGET_SECONDS * main_run["days"] / 365
    kinds = main_run["by_kind"]
    posting = (kinds.get("GET /ManualJournals", 0) - main_run["api_429"] + kinds.get("PUT /ManualJournals", 0))
    per_period = posting / main_run["posted"] if main_run["posted"] else 0.0
    print(f"wall: {main_run['wall_s'] / 60:.1f} min for {main_run['days']} days (target ≤ {wall_target / 60:.1f} min): "
          f"{'met' if main_run['wall_s'] <= wall_target else 'OVER'}")
    print(f"calls per posted period: {per_period:.2f} on the posting path (look-up + PUT), "
          f"{main_run['calls_per_posted'] or 0:.2f} with the chart/settings reads and 429s of the whole run "
          f"(target ≤ {TARGET_CALLS:g})")
    if "baseline" in results:
        base = results["baseline"]
        print(f"vs baseline: {base['seconds_per_period'] / main_run['seconds_per_period']:.2f}x less time per period, "
              f"{(base['calls_per_posted'] or 0) / (main_run['calls_per_posted'] or 1):.2f}x fewer calls per posted period")


if __name__ == "__main__":
    sys.exit(main())
