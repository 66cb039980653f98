"""Extraction speed: ``MamoHook.fetch_charges`` over HTTP against the Mamo sandbox in another process.

The sandbox (``python -m mamo_sandboxes.mamo``) runs in a subprocess, so server and client do not
share one GIL, seeded with N charges over the past year; its start-up time (generation and the
one-off rendering of each charge's JSON) is reported apart. The hook then reads every charge
(``created_from`` before the first one, so nothing stops early), parsing each with ``parse_charge``.

Baseline, in this process: ``json.loads(..., parse_float=Decimal)`` of the very same pages' bytes,
fetched beforehand; the hook's time divided by it is the ratio reported. The HTTP transfer alone
(the same pages fetched raw with a keep-alive session) is shown as well.

Target: ≥ 20,000 charges/s through the hook.

    .venv/bin/python benchmarks/bench_extract.py [--count 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_SECOND = 20_000
PER_PAGE = 100


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_sandbox(count: int, seed: int, port: int) -> tuple[subprocess.Popen, str, float]:
    from mamo_sandboxes.mamo import DEMO_API_KEY

    command = [sys.executable, "-m", "mamo_sandboxes.mamo", "--port", str(port), "--seed", str(seed),
               "--count", str(count), "--days", "365"]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the sandbox stopped: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(url + "/_sandbox/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)
    return process, DEMO_API_KEY, time.perf_counter() - started


def measure(count: int, seed: int) -> dict:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    from mamo_revenue.hooks.mamo import MamoHook

    port = _free_port()
    process, key, startup = start_sandbox(count, seed, port)
    try:
        base = f"http://127.0.0.1:{port}/manage_api/v1"
        os.environ["AIRFLOW_CONN_MAMO_BENCH"] = json.dumps({"conn_type": "mamo", "host": base, "password": key})
        created_from = datetime(2000, 1, 1)

        # warm-up: one connection look-up, one page
        hook = MamoHook(mamo_conn_id="mamo_bench")
        hook.get_me()

        started = time.perf_counter()
        charges = hook.fetch_charges(created_from=created_from, tz="Asia/Dubai", company="bench", period="bench")
        hook_seconds = time.perf_counter() - started
        assert len(charges) == count, (len(charges), count)

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        pages: list[bytes] = []
        started = time.perf_counter()
        page = 1
        while True:
            response = session.get(base + "/charges", params={"page": page, "per_page": PER_PAGE})
            response.raise_for_status()
            pages.append(response.content)
            if json.loads(response.content[response.content.rindex(b'"pagination_meta"') + 18 : -1])["next_page"] is None:
                break
            page += 1
        http_seconds = time.perf_counter() - started

        started = time.perf_counter()
        items = sum(len(json.loads(body, parse_float=Decimal)["data"]) for body in pages)
        json_seconds = time.perf_counter() - started
        assert items == count
        server_rss = _rss_mb(process.pid)
        client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "charges": count,
        "pages": len(pages),
        "sandbox_startup_seconds": round(startup, 2),
        "sandbox_rss_mb": round(server_rss, 1) if server_rss else None,
        "client_peak_rss_mb": round(client_peak, 1),
        "hook_seconds": round(hook_seconds, 3),
        "hook_charges_per_second": round(count / hook_seconds),
        "http_only_seconds": round(http_seconds, 3),
        "json_loads_seconds": round(json_seconds, 3),
        "json_loads_charges_per_second": round(count / json_seconds),
        "ratio_hook_to_json_loads": round(hook_seconds / json_seconds, 2),
        "target_per_second": TARGET_PER_SECOND,
        "within_target": count / hook_seconds >= TARGET_PER_SECOND,
        "mb_transferred": round(sum(map(len, pages)) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = measure(args.count, args.seed)
    if args.json:
        print(json.dumps(r, indent=1))
        return
    print(f"charges: {r['charges']:,} in {r['pages']:,} pages of {PER_PAGE} ({r['mb_transferred']} MB)")
    print(f"sandbox: start-up (seed + pre-render) {r['sandbox_startup_seconds']} s, RSS {r['sandbox_rss_mb']} MB")
    print(f"hook fetch_charges over HTTP: {r['hook_seconds']} s = {r['hook_charges_per_second']:,} charges/s "
          f"(target {TARGET_PER_SECOND:,}/s: {'ok' if r['within_target'] else 'BELOW TARGET'})")
    print(f"baseline json.loads(parse_float=Decimal) of the same bytes: {r['json_loads_seconds']} s = "
          f"{r['json_loads_charges_per_second']:,} charges/s; hook / json.loads = {r['ratio_hook_to_json_loads']}")
    print(f"HTTP transfer alone (raw pages): {r['http_only_seconds']} s; client peak RSS {r['client_peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
