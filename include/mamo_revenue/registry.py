"""The company registry file the DAG factory reads: the product DB's companies, as plain JSON.

Written atomically (temporary file, then rename), so a parse never sees half a file; written only
from the product DB, so the DB being down leaves the last good file — and every company's DAG — in
place.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope

#: What the factory needs to build a DAG; nothing secret, nothing that changes per run.
FIELDS = ("id", "name", "timezone", "frequency", "first_period", "status", "ledger_platform")


def registry_entries(engine) -> list[dict]:
    with session_scope(engine) as session:
        companies = repo.list_companies(session)
        return [
            {field: (getattr(c, field).isoformat() if field == "first_period" else getattr(c, field))
             for field in FIELDS}
            for c in companies
        ]


def export_registry(engine, path: Path) -> list[dict]:
    """Write the registry to ``path`` unless it already says the same; return the entries."""
    entries = registry_entries(engine)
    path = Path(path)
    try:
        if json.loads(path.read_text())["companies"] == entries:
            return entries  # unchanged: don't touch the file, so the DAG processor has nothing to re-parse
    except (FileNotFoundError, ValueError, KeyError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "companies": entries},
                      indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
    os.replace(tmp, path)
    return entries
