"""``mamo-sandboxes``: the Mamo, Xero and Zoho Books sandboxes on their local ports, for ``make run``
and compose.

The Mamo sandbox serves one demo business (key ``sk-demo-0000-mamo-sandbox``) with seeded charges
over the days before today (Dubai), so the same day gives the same charges; the Xero sandbox has
its default app (``mamo-sandbox-client``) and its demo organisation; the Zoho Books sandbox has its
default app (``mamo-sandbox-zoho-client``), its data centres under ``/{location}/accounts`` and
``/{location}/api``, and its demo organisation (in the EU data centre).
"""

from __future__ import annotations

import argparse
import copyreg
import os
import pickle
import signal
import threading
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from mamo_sandboxes.mamo import DEMO_API_KEY, build_demo_state
from mamo_sandboxes.mamo import create_app as mamo_app
from mamo_sandboxes.serving import BackgroundServer
from mamo_sandboxes.xero import XeroSandbox
from mamo_sandboxes.xero import create_app as xero_app
from mamo_sandboxes.zoho import ZohoSandbox
from mamo_sandboxes.zoho import create_app as zoho_app

# Locks carry no state worth keeping: a saved sandbox gets fresh ones when it is loaded.
copyreg.pickle(type(threading.Lock()), lambda _lock: (threading.Lock, ()))
copyreg.pickle(type(threading.RLock()), lambda _lock: (threading.RLock, ()))


def load_xero(path: Path | None) -> XeroSandbox:
    """The Xero sandbox as it was saved (journals, grants, organisations), or a fresh one."""
    if path is not None and path.exists():
        with path.open("rb") as handle:
            return pickle.load(handle)
    return XeroSandbox()


def load_zoho(path: Path | None) -> ZohoSandbox:
    """The Zoho Books sandbox as it was saved (journals, grants, organisations), or a fresh one."""
    if path is not None and path.exists():
        with path.open("rb") as handle:
            return pickle.load(handle)
    return ZohoSandbox()


def save(state, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with state.lock, tmp.open("wb") as handle:
        pickle.dump(state, handle)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mamo-sandboxes", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mamo-port", type=int, default=8701)
    parser.add_argument("--xero-port", type=int, default=8702)
    parser.add_argument("--zoho-port", type=int, default=8703)
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo business's charges")
    parser.add_argument("--count", type=int, default=600, help="demo charges to generate")
    parser.add_argument("--days", type=int, default=30, help="spread over this many days before today")
    parser.add_argument("--state-dir", type=Path,
                        help="keep the ledger sandbox's state here across restarts (saved every 10 s and at exit)")
    args = parser.parse_args(argv)
    xero_file = args.state_dir / "xero.pickle" if args.state_dir else None
    xero = load_xero(xero_file)
    zoho_file = args.state_dir / "zoho_books.pickle" if args.state_dir else None
    zoho = load_zoho(zoho_file)

    # Up to the start of today in Dubai: the same day gives the same charges, run after run.
    end = datetime.combine(datetime.now(ZoneInfo("Asia/Dubai")).date(), time.min)
    mamo = build_demo_state(seed=args.seed, count=args.count, days=args.days, end=end)
    servers = [
        BackgroundServer(mamo_app(mamo), args.host, args.mamo_port).start(),
        BackgroundServer(xero_app(xero), args.host, args.xero_port).start(),
        BackgroundServer(zoho_app(zoho), args.host, args.zoho_port).start(),
    ]
    print(f"Mamo sandbox  http://{args.host}:{args.mamo_port}/manage_api/v1  (API key {DEMO_API_KEY}, "
          f"{args.count} charges over {args.days} days)", flush=True)
    print(f"Xero sandbox  http://{args.host}:{args.xero_port}  (identity /identity/connect/*, "
          f"API /api.xro/2.0, admin /_sandbox)", flush=True)
    print(f"Zoho sandbox  http://{args.host}:{args.zoho_port}  (consent /us/accounts/oauth/v2/auth, "
          f"API /<location>/api/books/v3, admin /_sandbox)", flush=True)

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(10):
        save(xero, xero_file)
        save(zoho, zoho_file)
    for server in servers:
        server.stop()
    save(xero, xero_file)
    save(zoho, zoho_file)


if __name__ == "__main__":
    main()
