"""``mamo-sandboxes``: the Mamo and Xero sandboxes on their local ports, for ``make run`` and compose.

The Mamo sandbox serves one demo business (key ``sk-demo-0000-mamo-sandbox``) with seeded charges
over the days before today (Dubai), so the same day gives the same charges; the Xero sandbox has
its default app (``mamo-sandbox-client``) and its demo organisation.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import datetime, time
from zoneinfo import ZoneInfo

from mamo_sandboxes.mamo import DEMO_API_KEY, build_demo_state
from mamo_sandboxes.mamo import create_app as mamo_app
from mamo_sandboxes.serving import BackgroundServer
from mamo_sandboxes.xero import XeroSandbox
from mamo_sandboxes.xero import create_app as xero_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mamo-sandboxes", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mamo-port", type=int, default=8701)
    parser.add_argument("--xero-port", type=int, default=8702)
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo business's charges")
    parser.add_argument("--count", type=int, default=600, help="demo charges to generate")
    parser.add_argument("--days", type=int, default=30, help="spread over this many days before today")
    args = parser.parse_args(argv)

    # Up to the start of today in Dubai: the same day gives the same charges, run after run.
    end = datetime.combine(datetime.now(ZoneInfo("Asia/Dubai")).date(), time.min)
    mamo = build_demo_state(seed=args.seed, count=args.count, days=args.days, end=end)
    servers = [
        BackgroundServer(mamo_app(mamo), args.host, args.mamo_port).start(),
        BackgroundServer(xero_app(XeroSandbox()), args.host, args.xero_port).start(),
    ]
    print(f"Mamo sandbox  http://{args.host}:{args.mamo_port}/manage_api/v1  (API key {DEMO_API_KEY}, "
          f"{args.count} charges over {args.days} days)", flush=True)
    print(f"Xero sandbox  http://{args.host}:{args.xero_port}  (identity /identity/connect/*, "
          f"API /api.xro/2.0, admin /_sandbox)", flush=True)

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
