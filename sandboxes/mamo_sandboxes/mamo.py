"""A local stand-in for Mamo's Business API (``/manage_api/v1``), written from MAMO_API.md.

``create_app(state)`` serves ``GET /me``, ``GET /charges`` (and ``/payments``), ``GET /charges/{id}``,
``POST /charges/{id}/refunds`` and ``/webhooks`` (register, list, update, delete; events delivered
from a background thread) with Mamo's bodies and quirks. Every unknown of MAMO_API.md §12 is
a field of ``MamoSettings`` with the documented default, so tests can run a client under each
alternative. ``/_sandbox/...`` is the admin API for tests and the demo (not part of Mamo's API):
businesses, explicit or seeded charges, refunds, settings, the clock, request counters and the
webhook delivery attempts.

Run ``python -m mamo_sandboxes.mamo --port 8701 --seed 1 --count 1000`` for a seeded demo business.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .common import Clock, dumps
from .mamo_data import DUBAI
from .mamo_settings import MamoSettings
from .mamo_state import MamoSandbox, RefundRefused, Reply, SandboxError, json_bytes

__all__ = ["DEMO_API_KEY", "MamoSandbox", "MamoSettings", "RefundRefused", "SandboxError", "build_demo_state",
           "create_app", "main"]  # fmt: skip

API_PREFIX = "/manage_api/v1"
ADMIN_PREFIX = "/_sandbox"


# --- HTTP ------------------------------------------------------------------------------------------


def create_app(state: MamoSandbox | None = None) -> FastAPI:
    """The Mamo sandbox as an ASGI app; ``app.state.sandbox`` is the ``MamoSandbox`` it serves."""
    sandbox = state or MamoSandbox()
    app = FastAPI(title="Mamo sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox

    def reply(r: Reply) -> Response:
        headers = dict(r.headers or {})
        media = headers.pop("Content-Type", "application/json")
        return Response(r.body, status_code=r.status, media_type=media, headers=headers)

    @app.api_route(API_PREFIX + "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def mamo_api(path: str, request: Request) -> Response:
        body = await request.body() if request.method != "GET" else b""
        headers = {k.lower(): v for k, v in request.headers.items()}
        args = (request.method, path, dict(request.query_params), headers, body)
        if path.strip("/").startswith("webhooks"):  # a registration pings its URL: not on the event loop
            return reply(await run_in_threadpool(sandbox.handle, *args))
        return reply(sandbox.handle(*args))

    # --- admin API (not Mamo's) -------------------------------------------------------------

    def admin(status: int, value: Any) -> Response:
        return Response(json_bytes(value), status_code=status, media_type="application/json")

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise SandboxError(f"body is not JSON: {exc}") from None

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> Response:
        return admin(exc.status, {"detail": str(exc)})

    @app.exception_handler(ValidationError)
    async def _settings_error(request: Request, exc: ValidationError) -> Response:
        return admin(422, {"detail": json.loads(exc.json())})

    @app.get(ADMIN_PREFIX + "/health")
    async def health() -> Response:
        return admin(200, {"ok": True, "businesses": len(sandbox.businesses)})

    @app.post(ADMIN_PREFIX + "/reset")
    async def reset() -> Response:
        sandbox.reset()
        return admin(200, {"reset": True})

    @app.get(ADMIN_PREFIX + "/settings")
    async def get_settings() -> Response:
        return admin(200, sandbox.settings.model_dump(mode="json"))

    @app.patch(ADMIN_PREFIX + "/settings")
    async def patch_settings(request: Request) -> Response:
        return admin(200, sandbox.update_settings(**await body_of(request)).model_dump(mode="json"))

    @app.get(ADMIN_PREFIX + "/businesses")
    async def list_businesses() -> Response:
        with sandbox.lock:
            return admin(200, [{"business_name": b.business_name, "business_tag": b.business_tag,
                                "website": b.website, "charges": len(sandbox.tables[key])}
                               for key, b in sandbox.businesses.items()])  # fmt: skip

    @app.post(ADMIN_PREFIX + "/businesses")
    async def create_business(request: Request) -> Response:
        body = await body_of(request)
        try:
            business = sandbox.add_business(
                body["api_key"], body["business_name"], business_tag=body.get("business_tag"),
                website=body.get("website"),
            )  # fmt: skip
        except KeyError as exc:
            raise SandboxError(f"missing {exc.args[0]}") from None
        return admin(201, {"business_name": business.business_name, "business_tag": business.business_tag,
                           "website": business.website})  # fmt: skip

    @app.post(ADMIN_PREFIX + "/businesses/{tag}/charges")
    async def add_charges(tag: str, request: Request) -> Response:
        body = await body_of(request)
        charges = body.get("charges") if isinstance(body, dict) else body
        if not isinstance(charges, list) or not all(isinstance(c, dict) for c in charges):
            raise SandboxError('body must be {"charges": [{...}, ...]}')
        return admin(201, {"ids": sandbox.add_charges(tag, charges)})

    @app.post(ADMIN_PREFIX + "/businesses/{tag}/generate")
    async def generate_charges(tag: str, request: Request) -> Response:
        body = await body_of(request)

        def moment(name: str) -> datetime | None:
            value = body.get(name)
            return None if value is None else datetime.fromisoformat(str(value))

        try:
            ids = sandbox.generate(
                tag, seed=int(body.get("seed", 1)), count=int(body["count"]), start=moment("start"),
                end=moment("end"), tz=body.get("tz", DUBAI), status_weights=body.get("status_weights"),
                currency_weights=body.get("currency_weights"),
            )  # fmt: skip
        except (KeyError, ValueError) as exc:
            raise SandboxError(f"bad generate request: {exc}") from None
        return admin(201, {"count": int(body["count"]), "first_id": ids[0] if ids else None,
                           "last_id": ids[-1] if ids else None})  # fmt: skip

    @app.get(ADMIN_PREFIX + "/businesses/{tag}/charges")
    async def charge_ids(tag: str) -> Response:
        return admin(200, {"ids": sandbox.charge_ids(tag)})

    @app.get(ADMIN_PREFIX + "/businesses/{tag}/charges/{charge_id}")
    async def get_charge(tag: str, charge_id: str, kind: str = "single", event_type: str | None = None) -> Response:
        if kind not in ("list", "single", "webhook"):
            raise SandboxError("kind is list, single or webhook")
        return Response(sandbox.charge_json(tag, charge_id, kind, event_type).encode(), media_type="application/json")

    @app.patch(ADMIN_PREFIX + "/businesses/{tag}/charges/{charge_id}")
    async def patch_charge(tag: str, charge_id: str, request: Request) -> Response:
        updated = sandbox.update_charge(tag, charge_id, await body_of(request))
        return Response(updated.encode(), media_type="application/json")

    @app.post(ADMIN_PREFIX + "/businesses/{tag}/charges/{charge_id}/refunds")
    async def refund_charge(tag: str, charge_id: str, request: Request) -> Response:
        body = await body_of(request)
        return admin(200, sandbox.refund(tag, charge_id, body.get("amount")))

    @app.get(ADMIN_PREFIX + "/businesses/{tag}/webhooks")
    async def list_webhooks(tag: str) -> Response:
        return admin(200, sandbox.webhook_list(tag))

    @app.get(ADMIN_PREFIX + "/webhook-deliveries")
    async def webhook_deliveries(wait: float = 0) -> Response:
        """Every delivery attempt, oldest first; ``wait`` (seconds): first wait until none is queued."""
        idle = await run_in_threadpool(sandbox.deliverer.wait_idle, min(max(wait, 0), 60)) if wait else None
        body = dumps({"idle": idle, "attempts": sandbox.deliverer.attempts()})  # amounts exactly as delivered
        return Response(body, status_code=200, media_type="application/json")

    @app.get(ADMIN_PREFIX + "/clock")
    async def get_clock() -> Response:
        return admin(200, {"now": sandbox.clock.now().isoformat()})

    @app.post(ADMIN_PREFIX + "/clock")
    async def advance_clock(request: Request) -> Response:
        body = await body_of(request)
        seconds = float(body.get("advance_seconds", 0)) + 86400 * float(body.get("advance_days", 0))
        return admin(200, {"now": sandbox.advance_clock(seconds).isoformat()})

    @app.get(ADMIN_PREFIX + "/stats")
    async def get_stats() -> Response:
        with sandbox.lock:
            return admin(200, dict(sandbox.stats))

    @app.delete(ADMIN_PREFIX + "/stats")
    async def clear_stats() -> Response:
        with sandbox.lock:
            sandbox.stats.clear()
        return admin(200, {})

    return app


# --- demo ------------------------------------------------------------------------------------------


#: The demo business's key: the one airflow_settings.yaml gives the ``mamo_default`` connection.
DEMO_API_KEY = "sk-demo-0000-mamo-sandbox"


def build_demo_state(
    *,
    seed: int = 1,
    count: int = 1000,
    api_key: str | None = None,
    business_name: str = "Demo Trading LLC",
    business_tag: str = "demo",
    days: int = 90,
    end: datetime | None = None,
    clock: Clock | None = None,
    settings: MamoSettings | None = None,
) -> MamoSandbox:
    """A sandbox with one business holding ``count`` seeded charges from the ``days`` before ``end``.

    ``end`` defaults to now (Dubai wall-clock). The business's key is ``api_key`` (default
    ``DEMO_API_KEY``); find it again as ``state.keys_by_tag[business_tag]``.
    """
    state = MamoSandbox(clock=clock, settings=settings)
    state.add_business(api_key or DEMO_API_KEY, business_name, business_tag=business_tag)
    if count:
        end = end or state.clock.now().astimezone(ZoneInfo(DUBAI)).replace(tzinfo=None, microsecond=0)
        state.generate(business_tag, seed=seed, count=count, start=end - timedelta(days=days), end=end)
    return state


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m mamo_sandboxes.mamo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90, help="charges spread over this many days before now")
    parser.add_argument("--api-key", default=DEMO_API_KEY)
    parser.add_argument("--business-name", default="Demo Trading LLC")
    args = parser.parse_args(argv)
    state = build_demo_state(
        seed=args.seed, count=args.count, api_key=args.api_key, business_name=args.business_name, days=args.days
    )
    key = state.keys_by_tag["demo"]
    print(f"Mamo sandbox: http://{args.host}:{args.port}{API_PREFIX}", flush=True)
    print(f"business 'demo' ({args.business_name}), {args.count} charges, API key: {key}", flush=True)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
