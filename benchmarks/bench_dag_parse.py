"""DAG parse time of the company factory with 1,000 and 10,000 companies.

What the dag-processor does: a DagBag loads `dags/mamo_sync.py` with a registry of N companies.
Each size runs in a fresh subprocess (the import of Airflow itself, ~4 s cold, is outside the
timing, as it is paid once per dag-processor); the baseline is the same file with ONE company,
measured in the same subprocess, so the ratio shows the per-company cost.

Targets (issue #2): 1,000 companies ≤ 2 s, 10,000 ≤ 15 s.

    .venv/bin/python benchmarks/bench_dag_parse.py [--sizes 1000 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {1000: 2.0, 10000: 15.0}

CHILD = r"""
import json, os, sys, time, tempfile, shutil
from pathlib import Path
import airflow.sdk  # noqa: F401  (paid once per dag-processor, not per parse)
from airflow.dag_processing.dagbag import DagBag

def registry(n, path):
    json.dump({"companies": [
        {"id": f"c{i:05d}", "name": f"Company {i}", "timezone": "Asia/Dubai",
         "frequency": "weekly" if i % 3 == 0 else "daily", "first_period": "2026-11-02",
         "status": "active", "ledger_platform": "xero"} for i in range(n)]}, open(path, "w"))

def parse(n):
    folder = Path(tempfile.mkdtemp())
    shutil.copy(os.environ["DAG_FILE"], folder / "mamo_sync.py")
    registry(n, folder / "registry.json")
    os.environ["MAMO_REVENUE_REGISTRY"] = str(folder / "registry.json")
    start = time.perf_counter()
    bag = DagBag(dag_folder=str(folder / "mamo_sync.py"))
    took = time.perf_counter() - start
    assert not bag.import_errors, bag.import_errors
    assert len(bag.dag_ids) == n, len(bag.dag_ids)
    return took

parse(1)  # warm imports of the package itself
baseline = min(parse(1) for _ in range(3))
n = int(sys.argv[1])
print(json.dumps({"companies": n, "seconds": parse(n), "baseline_one_company_seconds": baseline}))
"""


def measure(n: int) -> dict:
    env = {**os.environ, "DAG_FILE": str(ROOT / "dags" / "mamo_sync.py"),
           "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or tempfile.mkdtemp(prefix="bench-airflow-"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        r = measure(n)
        r["target_seconds"] = TARGETS.get(n)
        r["ratio_to_one_company"] = round(r["seconds"] / r["baseline_one_company_seconds"], 1)
        r["ms_per_company"] = round(1000 * r["seconds"] / n, 3)
        r["within_target"] = r["target_seconds"] is None or r["seconds"] <= r["target_seconds"]
        results.append(r)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{'companies':>10} {'parse s':>8} {'target s':>9} {'1-company s':>12} {'ratio':>7} {'ms/company':>11}")
    for r in results:
        print(f"{r['companies']:>10} {r['seconds']:>8.2f} {r['target_seconds'] or '-':>9} "
              f"{r['baseline_one_company_seconds']:>12.4f} {r['ratio_to_one_company']:>7} {r['ms_per_company']:>11}"
              f"  {'ok' if r['within_target'] else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
