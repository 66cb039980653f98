"""``mamo-revenue``: run the embedded product, and the few operations a data engineer needs.

    mamo-revenue run                      # sandboxes + demo company + Airflow standalone (make run)
    mamo-revenue demo [--period P]        # one period, headless, through the real DAG (make demo)
    mamo-revenue db upgrade               # migrate the product DB (connection mamo_revenue_db)
    mamo-revenue company add ID --name N  # register a company (then: connect, map)
    mamo-revenue company list
    mamo-revenue connect ID               # OAuth consent for the company's ledger
    mamo-revenue map ID sales=4000 …      # categories → ledger account codes
    mamo-revenue registry export          # product DB → dags/registry.json
    mamo-revenue history [ID]             # sync records: period, status, reference, journal id
    mamo-revenue backfill --from D --to D (--company ID ... | --all)   # re-sync a range of periods
    mamo-revenue settings load [FILE]     # airflow_settings.yaml → connections, pools, variables

Every command outside the embedded install reads its connections from Airflow (env vars,
secrets backend or metadata DB); inside a checkout it falls back to airflow_settings.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import requests


def _engine():
    from mamo_revenue.db.session import engine_for_connection

    return engine_for_connection()


def _use_local_connections_if_unset() -> None:
    """Inside a checkout with no Airflow connections configured, use airflow_settings.yaml's."""
    from mamo_revenue.local import Embedded

    if "AIRFLOW_CONN_MAMO_REVENUE_DB" in os.environ:
        return
    embedded = Embedded.here()
    if embedded.settings_file.exists() and embedded.root.joinpath("dags").is_dir():
        embedded.activate()


# --- embedded product ---------------------------------------------------------------------------


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from mamo_revenue.local import ADMIN_PASSWORD, ADMIN_USER, Embedded, stop

    embedded = Embedded.here()
    embedded.activate()
    sandboxes = standalone = None
    # Ctrl-C or a TERM from a supervisor: stop the sandboxes and Airflow (they run in sessions of their own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sandboxes = embedded.start_sandboxes()
        embedded.bootstrap_demo()
        embedded.prepare_airflow()
        print("• Starting Airflow (standalone: scheduler, dag-processor, api-server, triggerer) …", flush=True)
        log = (embedded.var / "airflow-standalone.log").open("ab")
        standalone = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"],
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{embedded.api_port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and standalone.poll() is None:
            try:
                if requests.get(f"{url}/api/v2/monitor/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        else:
            raise SystemExit(f"Airflow did not start; see {embedded.var / 'airflow-standalone.log'}")
        print(f"\n  Airflow UI:  {url}\n  Login:       {ADMIN_USER} / {ADMIN_PASSWORD}\n"
              f"  DAGs:        mamo_sync_demo (Xero sandbox), mamo_sync_demo_zoho (Zoho Books sandbox):\n"
              f"               recent daily periods run and post one journal each\n"
              f"  Logs:        {embedded.var}/airflow-standalone.log, {embedded.var}/sandboxes.log\n"
              f"  Stop:        Ctrl-C\n", flush=True)
        standalone.wait()
        return standalone.returncode or 0
    except KeyboardInterrupt:
        print("\nStopping …")
        return 0
    finally:
        stop(standalone)
        stop(sandboxes)


def cmd_demo(args) -> int:
    from mamo_revenue.db.session import engine_for_connection
    from mamo_revenue.local import DEMO_COMPANIES, DEMO_TZ, Embedded, stop
    from mamo_revenue.periods import Period

    embedded = Embedded.here()
    embedded.activate()
    sandboxes = None
    try:
        sandboxes = embedded.start_sandboxes()
        embedded.bootstrap_demo()
        embedded.prepare_airflow()
        period = Period.parse(args.period) if args.period else Period.last_complete_before(
            datetime.now(UTC), DEMO_TZ, "daily")
        engine = engine_for_connection()
        failed = 0
        for company_id, _name, platform, _conn in DEMO_COMPANIES:
            failed += _demo_one(embedded, engine, company_id, platform, period, verbose=args.verbose)
        return 1 if failed else 0
    finally:
        stop(sandboxes)


def _demo_one(embedded, engine, company_id: str, platform: str, period, *, verbose: bool) -> int:
    """Sync one period of one demo company through its DAG; print the outcome. 1 when it failed."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(engine) as session:
        before = repo.get_sync_record(session, company_id, period.key)
        was_closed = before is not None and before.closed
    print(f"\n• {company_id} ({platform}): syncing period {period.label} through the DAG "
          f"(airflow dags test mamo_sync_{company_id}) …", flush=True)
    result = embedded.airflow("dags", "test", f"mamo_sync_{company_id}", "--conf",
                              json.dumps({"period": period.label}), check=False, quiet=not verbose)
    with session_scope(engine) as session:
        record = repo.get_sync_record(session, company_id, period.key)
        summary = _record_summary(record) if record else None
    if result.returncode != 0 or summary is None or summary["status"] == "failed":
        print(f"  The sync of {period.label} failed: "
              f"{summary['error'] if summary else 'see the output above (run with --verbose)'}")
        return 1
    if was_closed:
        print(f"  Period {period.label} is already posted (reference {summary['reference']}, ledger "
              f"journal {summary['ledger_journal_id'] or '—'}): nothing was posted this time.")
    elif summary["status"] == "nothing_to_post":
        print(f"  Period {period.label} had no Mamo activity: nothing to post.")
    else:
        print(f"  Posted period {period.label}:")
    if summary["status"] == "posted":
        _print_ledger_journal(engine, company_id, summary["reference"])
    return 0


def _record_summary(record) -> dict:
    return {"period": record.period_label, "status": record.status, "reference": record.reference,
            "ledger_journal_id": record.ledger_journal_id, "ledger_url": record.ledger_url,
            "error": f"{record.error_class}: {record.error_message} — {record.guidance}"
            if record.error_class else None}


def _print_ledger_journal(engine, company_id: str, reference: str) -> None:
    """The journal as the ledger holds it, as a debit/credit table."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.money import format_minor
    from mamo_revenue.sync import ledger_hook_for

    with session_scope(engine) as session:
        company = repo.require_company(session, company_id)
        session.expunge(company)
    ledger = ledger_hook_for(company, engine)
    journal = ledger.find_journal(reference)
    if journal is None:
        print(f"  (the ledger has no journal {reference})")
        return
    names = {a.id: f"{a.code} {a.name}" for a in ledger.list_accounts()}
    rows = [(names.get(line.account_id, line.account_code or line.account_id), line.description,
             format_minor(line.amount_minor) if line.side == "debit" else "",
             format_minor(line.amount_minor) if line.side == "credit" else "") for line in journal.lines]
    debit = sum(line.amount_minor for line in journal.lines if line.side == "debit")
    credit = sum(line.amount_minor for line in journal.lines if line.side == "credit")
    rows.append(("total", "", format_minor(debit), format_minor(credit)))
    widths = [max(len(r[i]) for r in rows + [("account", "description", "debit", "credit")]) for i in range(4)]
    print(f"  reference {journal.reference}   {ledger.platform} journal {journal.ledger_id}   status {journal.status}")
    for row in [("account", "description", "debit", "credit"), *rows]:
        print(f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}")


# --- operations ---------------------------------------------------------------------------------


def cmd_db_upgrade(args) -> int:
    from mamo_revenue.db.session import upgrade

    revision = upgrade(_engine())
    print(f"product DB at revision {revision}")
    return 0


def cmd_company_add(args) -> int:
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    vat = None if args.vat_rate.lower() == "none" else Decimal(args.vat_rate)
    first = date.fromisoformat(args.first_period) if args.first_period else \
        datetime.now(UTC).astimezone(ZoneInfo(args.timezone)).date()
    with session_scope(_engine()) as session:
        company = repo.upsert_company(
            session, args.company_id, name=args.name, timezone=args.timezone, frequency=args.frequency,
            base_currency=args.base_currency, sales_vat_rate=vat, first_period=first,
            mamo_conn_id=args.mamo_conn, ledger_platform=args.ledger, ledger_conn_id=args.ledger_conn)
        print(f"company {company.id} ({company.name}): {company.frequency} from {company.first_period}, "
              f"{company.timezone}, ledger {company.ledger_platform} via connection {company.ledger_conn_id}")
    print("next: mamo-revenue connect", args.company_id)
    return 0


def cmd_company_list(args) -> int:
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(_engine()) as session:
        for c in repo.list_companies(session):
            connection = repo.get_ledger_connection(session, c.id)
            state = connection.status if connection else "not connected"
            print(f"{c.id:<20} {c.name:<30} {c.frequency:<7} {c.status:<13} {c.ledger_platform} ({state})")
    return 0


def cmd_connect(args) -> int:
    from mamo_revenue.connect import connect_interactively

    tenant = connect_interactively(_engine(), args.company_id, tenant_name=args.tenant)
    print(f"company {args.company_id} connected to {tenant!r}")
    return 0


def cmd_map(args) -> int:
    from mamo_revenue.connect import map_by_codes

    codes = dict(pair.split("=", 1) for pair in args.pairs)
    mapping = map_by_codes(_engine(), args.company_id, codes)
    for category, account in sorted(mapping.items()):
        print(f"{category:<16} → {account.code} {account.name} ({account.account_id})")
    return 0


def cmd_registry_export(args) -> int:
    from mamo_revenue.local import Embedded
    from mamo_revenue.registry import export_registry

    path = Path(args.path) if args.path else Embedded.here().registry_file
    entries = export_registry(_engine(), path)
    print(f"{len(entries)} companies → {path}")
    return 0


def cmd_history(args) -> int:
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(_engine()) as session:
        for r in repo.list_sync_records(session, args.company_id, limit=args.limit):
            print(f"{r.company_id:<14} {r.period_label:<11} {r.status:<16} {r.reference:<26} "
                  f"{r.ledger_journal_id or '':<38} {r.error_class or ''}")
    return 0


def cmd_backfill(args) -> int:
    from mamo_revenue import backfill

    engine = _engine()
    api = backfill.AirflowApi(args.api_url, token=args.token, username=args.username,
                              password=os.environ.get("MAMO_REVENUE_AIRFLOW_PASSWORD"))
    companies = backfill.companies_for(engine, args.company, args.all)
    if not companies:
        print("no active company to backfill")
        return 0
    outcomes = backfill.run(engine, api, first=args.date_from, last=args.date_to, companies=companies,
                            reprocess=args.reprocess_behavior, max_active_runs=args.max_active_runs,
                            dry_run=args.dry_run)
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_settings_load(args) -> int:
    from mamo_revenue.airflow_settings import load_settings

    path = Path(args.file).resolve()
    summary = load_settings(path, project_root=args.project_root or path.parent, only=args.only)
    print(f"Loaded into {os.environ.get('AIRFLOW_HOME', '~/airflow')}: {summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mamo-revenue", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the embedded product: sandboxes, demo company, Airflow standalone").set_defaults(
        func=cmd_run)
    demo = sub.add_parser("demo", help="post one period of the demo company, headless")
    demo.add_argument("--period", help="YYYY-MM-DD (default: yesterday in Asia/Dubai)")
    demo.add_argument("--verbose", action="store_true", help="show Airflow's output")
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="the product database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    company = sub.add_parser("company", help="companies").add_subparsers(dest="company_command", required=True)
    add = company.add_parser("add", help="add or update a company")
    add.add_argument("company_id")
    add.add_argument("--name", required=True)
    add.add_argument("--timezone", default="Asia/Dubai")
    add.add_argument("--frequency", choices=["daily", "weekly"], default="daily")
    add.add_argument("--base-currency", default="AED")
    add.add_argument("--vat-rate", default="0.05", help="sales VAT rate, VAT-inclusive prices; 'none' for no VAT")
    add.add_argument("--first-period", help="YYYY-MM-DD, default today")
    add.add_argument("--mamo-conn", default="mamo_default", help="Airflow connection with the Mamo API key")
    add.add_argument("--ledger", default="xero")
    add.add_argument("--ledger-conn", default="xero_default")
    add.set_defaults(func=cmd_company_add)
    company.add_parser("list").set_defaults(func=cmd_company_list)

    connect = sub.add_parser("connect", help="connect the company's ledger (OAuth consent)")
    connect.add_argument("company_id")
    connect.add_argument("--tenant", help="organisation name, when the consent covers several")
    connect.set_defaults(func=cmd_connect)

    mapping = sub.add_parser("map", help="map categories to ledger account codes")
    mapping.add_argument("company_id")
    mapping.add_argument("pairs", nargs="+", metavar="CATEGORY=CODE")
    mapping.set_defaults(func=cmd_map)

    registry = sub.add_parser("registry", help="the DAG registry file").add_subparsers(dest="registry_command",
                                                                                      required=True)
    export = registry.add_parser("export", help="write dags/registry.json from the product DB")
    export.add_argument("--path")
    export.set_defaults(func=cmd_registry_export)

    history = sub.add_parser("history", help="sync records, newest first")
    history.add_argument("company_id", nargs="?")
    history.add_argument("--limit", type=int, default=30)
    history.set_defaults(func=cmd_history)

    from mamo_revenue.backfill import DEFAULT_MAX_ACTIVE_RUNS, REPROCESS

    backfill = sub.add_parser(
        "backfill", help="sync a range of past periods (one Airflow backfill per company DAG)",
        description="Create one Airflow backfill per company over --from..--to (days in the company's zone, both "
                    "included), through Airflow's REST API. Periods already posted are skipped by the sync; dates "
                    "that already have a run are skipped by Airflow unless --reprocess-behavior says otherwise. "
                    "Airflow: --api-url or MAMO_REVENUE_AIRFLOW_URL; --token or MAMO_REVENUE_AIRFLOW_TOKEN, else "
                    "--username and MAMO_REVENUE_AIRFLOW_PASSWORD (default admin/admin, the embedded install).")
    backfill.add_argument("--from", dest="date_from", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    backfill.add_argument("--to", dest="date_to", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument("--company", action="append", metavar="ID", help="a company id; repeat for several")
    which.add_argument("--all", action="store_true", help="every active company")
    backfill.add_argument("--reprocess-behavior", choices=REPROCESS, default="none",
                          help="none: skip dates that have a run (default); failed: re-run failed runs only; "
                               "completed: re-run every finished run")
    backfill.add_argument("--max-active-runs", type=int, default=DEFAULT_MAX_ACTIVE_RUNS,
                          help="periods of one company running at once (default %(default)s)")
    backfill.add_argument("--dry-run", action="store_true", help="say what would run, create nothing")
    backfill.add_argument("--api-url", help="the Airflow api-server (default $MAMO_REVENUE_AIRFLOW_URL or "
                                            "http://127.0.0.1:8080)")
    backfill.add_argument("--token", help="a bearer token for the Airflow API (default $MAMO_REVENUE_AIRFLOW_TOKEN)")
    backfill.add_argument("--username", help="Airflow user when no token (default $MAMO_REVENUE_AIRFLOW_USER or admin)")
    backfill.set_defaults(func=cmd_backfill)

    settings = sub.add_parser("settings", help="Airflow settings").add_subparsers(dest="settings_command",
                                                                                  required=True)
    load = settings.add_parser("load", help="load airflow_settings.yaml (astro CLI format) into the current "
                                            "AIRFLOW_HOME: connections, pools, variables")
    load.add_argument("file", nargs="?", default="airflow_settings.yaml")
    load.add_argument("--only", choices=["connections", "pools", "variables"], action="append",
                      help="load only these sections (repeatable); e.g. --only pools in production")
    load.add_argument("--project-root", help="where relative sqlite paths start (default: the file's folder)")
    load.set_defaults(func=cmd_settings_load)

    args = parser.parse_args(argv)
    import logging

    for noisy in ("alembic", "airflow.task.hooks"):  # the commands print what matters themselves
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command not in ("run", "demo", "settings"):
        _use_local_connections_if_unset()
    try:
        return args.func(args)
    except Exception as exc:  # a clear message, never a secret-bearing traceback of requests
        from mamo_revenue.errors import MamoRevenueError

        if isinstance(exc, MamoRevenueError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
