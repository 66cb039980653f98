"""Fixtures of the ledger contract suite: one driver per ledger (``ledger_drivers.py``), each with its
sandbox on a real socket."""

from __future__ import annotations

import pytest
from ledger_drivers import DRIVERS, LEDGERS, Driver
from token_stores import make_store, product_engine  # noqa: F401 (fixtures)

from mamo_sandboxes.serving import BackgroundServer


@pytest.fixture(scope="session")
def sandbox_urls():
    """One server per ledger for the whole session (each test resets its state)."""
    servers = {name: BackgroundServer(app()).start() for name, (_, app) in DRIVERS.items()}
    yield {name: server.url for name, server in servers.items()}
    for server in servers.values():
        server.stop()


@pytest.fixture(params=LEDGERS)
def ledger(request, sandbox_urls, monkeypatch) -> Driver:
    driver_class, _ = DRIVERS[request.param]
    return driver_class(sandbox_urls[request.param], monkeypatch, request.getfixturevalue("make_store"))


@pytest.fixture
def every_ledger(request, sandbox_urls, monkeypatch) -> dict[str, Driver]:
    stores = request.getfixturevalue("make_store")
    return {name: cls(sandbox_urls[name], monkeypatch, stores) for name, (cls, _) in DRIVERS.items()}
