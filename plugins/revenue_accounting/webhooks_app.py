"""The Mamo webhook receiver: ``POST /mamo-webhooks/<company id>``, one endpoint per company.

Mamo calls it, not a person, so it has no Airflow login: each delivery must carry, in ``Authorization``,
the company's webhook secret (compared in constant time). Anything else is 401 — an unknown company
too, so the answer says nothing about which companies exist. The body is recorded as an event (once,
however often it is delivered), never booked; a ping is answered 200.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mamo_revenue import webhooks
from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import webhook_secret
from mamo_revenue.db.models import COMPANY_ID_PATTERN
from mamo_revenue.db.session import session_scope

log = logging.getLogger("mamo_revenue.webhooks")
MAX_BODY = 256 * 1024



def create_webhook_app() -> FastAPI:
    app = FastAPI(title="Mamo webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/{company_id}")
    async def receive(company_id: str, request: Request):
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"detail": "body too large"}, 413)
        return await run_in_threadpool(_receive, company_id, request.headers.get("authorization"), body)

    return app


def _receive(company_id: str, authorization: str | None, body: bytes):
    """The delivery, off the event loop (the product DB is blocking)."""
    from .context import cipher, engine

    try:
        event = webhooks.parse_delivery(body)
    except webhooks.BadDelivery as exc:
        event = exc
    if event is webhooks.PING and not authorization:
        # Mamo pings the URL when the webhook is registered, and does not document whether that ping
        # carries the auth_header: a bare ping is answered, the same way for every id (it records
        # nothing and says nothing about which companies exist). A ping with a header is checked.
        return {"ping": "pong"}
    secret = None
    product = engine()
    if COMPANY_ID_PATTERN.match(company_id):
        with session_scope(product, read_only=True) as session:
            company = repo.get_company(session, company_id)
            if company is not None:
                secret = webhook_secret(company, cipher())
    if not webhooks.authorised(authorization, secret):
        log.warning("Mamo webhook refused for %s: wrong or missing Authorization", company_id[:40])
        return JSONResponse({"detail": "unauthorised"}, 401)
    if isinstance(event, webhooks.BadDelivery):
        return JSONResponse({"detail": str(event)}, 400)
    if event is webhooks.PING:
        return {"ping": "pong"}
    with session_scope(product) as session:
        new = webhooks.record(session, company_id, event)
    log.info("Mamo webhook for %s: %s of charge %s (%s)", company_id, event.event_type, event.charge_id,
             "recorded" if new else "duplicate delivery, already recorded")
    return {"received": True, "duplicate": not new}

