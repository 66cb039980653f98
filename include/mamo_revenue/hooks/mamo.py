"""Mamo Business API hook: read the business behind a key, one charge, or every charge since a date;
register, list and delete webhooks (MAMO_API.md §8.1).

Contract: ``shared/docs/MAMO_API.md``; paging, stop rule, look-back and retries: ``docs/MAMO_EXTRACTION.md``.
The hook relies on nothing MAMO_API.md §12 leaves open: it works whatever the list order, page
sizes, past-the-end answer, number and string types, and it de-duplicates charges by id.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from mamo_revenue.charges import Charge, parse_charge
from mamo_revenue.errors import ChargeDataError, MamoApiError, MamoAuthError, MamoUnavailable

RESOURCES = ("charges", "payments")
DEFAULT_PER_PAGE = 100
DEFAULT_TIMEOUT = 30.0
#: page sizes tried, in order, when Mamo refuses the configured one with 422 (§12 row 3)
FALLBACK_PER_PAGE = (50, 25, 10)
#: consecutive pages bringing no new charge id before the scan is declared stuck
STUCK_PAGES = 3


@dataclass(frozen=True)
class MamoCallParams:
    """What a call needs from the Airflow connection; ``api_key`` never appears in a repr or log."""

    base_url: str
    api_key: str = field(repr=False)
    resource: str = "charges"
    per_page: int = DEFAULT_PER_PAGE
    timeout: float = DEFAULT_TIMEOUT


class TransientResponse(Exception):
    """A 429 or 5xx answer: worth another attempt, after ``retry_after`` seconds when Mamo said."""

    def __init__(self, status: int, what: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status} from {what}")
        self.status, self.retry_after = status, retry_after


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: timeouts, connection failures, broken bodies, 429 and 5xx answers."""
    return isinstance(
        exc,
        (
            TransientResponse,
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _sleep(seconds: float) -> None:  # one place for tests to watch the waits
    time.sleep(seconds)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a scan builds many small objects.

    A scan keeps every charge it reads (with its raw dict), and each automatic collection walks all
    of them again; pausing it makes a million-charge scan about a third faster. Nothing a scan
    creates is cyclic garbage, and the previous state is restored however the scan ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _api_error(message: str, status: int | None, error_code: str | None) -> MamoApiError:
    error = MamoApiError(message)
    error.status_code, error.error_code = status, error_code
    return error


class MamoHook(BaseHook):
    """Mamo's Business API over one Airflow connection (type ``mamo``).

    Connection: ``host`` = API base URL (``https://business.mamopay.com/manage_api/v1``, or a local
    sandbox), ``password`` = API key, extra ``resource`` (``charges`` or ``payments``), ``per_page``
    (default 100) and ``timeout`` (seconds, default 30). ``api_key`` replaces the connection's key: a
    company's own key, kept encrypted in the product DB (``db.company_secrets.mamo_hook_for``).

    Errors: ``MamoAuthError`` for a refused key (403), ``MamoUnavailable`` once timeouts, connection
    failures, 429 and 5xx outlast ``max_attempts``, ``MamoApiError`` for any other refusal, and
    ``ChargeDataError`` (labelled with company and period) for a charge that cannot be read.
    """

    conn_name_attr = "mamo_conn_id"
    default_conn_name = "mamo_default"
    conn_type = "mamo"
    hook_name = "Mamo"

    def __init__(
        self,
        *,
        mamo_conn_id: str = default_conn_name,
        api_key: str | None = None,
        max_attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        logger_name: str | None = None,
    ):
        super().__init__(logger_name=logger_name)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.mamo_conn_id = mamo_conn_id
        self._api_key = api_key
        self.max_attempts = max_attempts
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.retry_after_max = retry_after_max
        self._session: requests.Session | None = None

    # --- connection ---------------------------------------------------------------------------

    @staticmethod
    def call_params(conn: Any, api_key: str | None = None) -> MamoCallParams:
        """The call parameters of an Airflow connection (pure: reads only the connection's fields);
        ``api_key``, when given, is used instead of the connection's password."""
        conn_id = getattr(conn, "conn_id", None) or "?"
        host = (conn.host or "").strip()
        if not host:
            raise MamoApiError(
                f"Mamo connection {conn_id} has no host",
                guidance="Set the connection's host to the API base URL, e.g. https://business.mamopay.com/manage_api/v1.",
            )
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if not (api_key or conn.password):
            raise MamoAuthError(f"Mamo connection {conn_id} has no API key (the connection's password)")
        extra = conn.extra_dejson or {}

        def option(name: str, default: Any) -> Any:
            value = extra.get(name, extra.get(f"extra__mamo__{name}"))
            return default if value in (None, "") else value

        resource = str(option("resource", "charges")).strip("/ ").lower()
        if resource not in RESOURCES:
            raise MamoApiError(f"Mamo connection {conn_id}: resource {resource!r} is not one of {RESOURCES}")
        try:
            per_page = int(option("per_page", DEFAULT_PER_PAGE))
            timeout = float(option("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError) as exc:
            raise MamoApiError(f"Mamo connection {conn_id}: per_page and timeout must be numbers ({exc})") from None
        if per_page < 1 or timeout <= 0:
            raise MamoApiError(f"Mamo connection {conn_id}: per_page and timeout must be positive")
        return MamoCallParams(host.rstrip("/"), api_key or conn.password, resource, per_page, timeout)

    @cached_property
    def params(self) -> MamoCallParams:
        return self.call_params(self.get_connection(self.mamo_conn_id), self._api_key)

    def get_conn(self) -> requests.Session:
        """The HTTP session, built on first use and reused (keep-alive) by every call.

        Proxy and CA-bundle settings are read from the environment once, here, rather than on
        every request (``trust_env`` would re-scan the environment per page, ~0.3 ms each).
        """
        if self._session is None:
            session = requests.Session()
            session.proxies = requests.utils.get_environ_proxies(self.params.base_url)
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            session.trust_env = False
            session.headers.update({
                "Authorization": f"Bearer {self.params.api_key}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "mamo-revenue/0.1",
            })  # fmt: skip
            self._session = session
        return self._session

    # --- one call, with retries ---------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """``Retry-After`` (capped at ``retry_after_max``) when Mamo gave one, else exponential back-off."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_max)
        return wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)(state)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("Mamo call failed (%s), attempt %d of %d; retrying in %.2f s",
                         exc, state.attempt_number, self.max_attempts, wait)  # fmt: skip

    def _send_once(self, method: str, path: str, params: dict | None, body: dict | None = None) -> Any:
        p = self.params
        # ``what`` names the call in errors and logs: never the body (a webhook's auth_header is a secret)
        what = f"{method} {path}" + (f"?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else "")
        response = self.get_conn().request(
            method, p.base_url + path, params=params, timeout=(min(10.0, p.timeout), p.timeout),
            data=None if body is None else json.dumps(body),
        )
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientResponse(status, what, retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 400:
            error_code, messages = _error_fields(response)
            answer = f"HTTP {status}" + (f" {error_code}" if error_code else "")
            if status in (401, 403):
                whose = "the company's own API key" if self._api_key else f"the API key of connection {self.mamo_conn_id}"
                raise MamoAuthError(f"Mamo refused {whose} ({answer} to {what})")
            detail = f": {'; '.join(messages)}" if messages else ""
            raise _api_error(f"Mamo answered {answer} to {what}{detail}", status, error_code)
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise _api_error(f"Mamo answered {what} with a body that is not JSON", status, None) from None

    def _call(self, method: str, path: str, params: dict | None = None, body: dict | None = None) -> Any:
        """One API call, retried on ``is_retryable`` failures; JSON numbers come back as ``Decimal``."""
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=lambda seconds: _sleep(seconds),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._send_once, method, path, params, body)
        except Exception as exc:
            if is_retryable(exc):
                raise MamoUnavailable(
                    f"Mamo did not answer {method} {path} after {self.max_attempts} attempts: {exc}"
                ) from exc
            raise

    # --- API ------------------------------------------------------------------------------------

    def get_me(self) -> dict:
        """``GET /me``: the business behind the key (``business_name``, ``business_tag``, ``website``)."""
        body = self._call("GET", "/me")
        if not isinstance(body, dict):
            raise MamoApiError("Mamo answered GET /me with something other than an object")
        return body

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI's Test button: call ``/me`` once."""
        try:
            me = self.get_me()
        except Exception as exc:  # the UI shows the message; it never contains the key
            return False, str(exc)
        return True, f"Connected to Mamo business {me.get('business_name')!r} ({me.get('business_tag')})"

    def get_charge(self, charge_id: str, *, tz: str = "Asia/Dubai", company: str = "?", period: str = "?") -> Charge:
        """``GET /charges/{id}``, e.g. to re-read a charge a webhook named; 404 is a ``MamoApiError``."""
        body = self._call("GET", f"/{self.params.resource}/{quote(charge_id, safe='')}")
        if not isinstance(body, dict):
            raise MamoApiError(f"Mamo answered GET /charges/{charge_id} with something other than an object")
        try:
            return parse_charge(body, tz=tz)
        except ChargeDataError as exc:
            raise exc.in_context(company=company, period=period) from exc

    # --- webhooks (MAMO_API.md §8.1) ------------------------------------------------------------

    def register_webhook(self, url: str, events: list[str], auth_header: str) -> dict:
        """``POST /webhooks``: Mamo first pings ``url`` and refuses (422 "Webhook is unreachable") unless it
        answers. Returns the webhook (``id``, ``url``, ``enabled_events``, ``auth_header``).

        Mamo drops unknown fields silently, so what came back is compared with what was sent; a webhook
        registered differently is deleted again and reported as ``MamoApiError``. ``auth_header`` is
        never logged nor put in an error message.
        """
        sent = {"url": url, "enabled_events": list(events), "auth_header": auth_header}
        body = self._call("POST", "/webhooks", body=sent)
        webhook_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(webhook_id, str) or not webhook_id:
            raise MamoApiError("Mamo answered POST /webhooks without a webhook id",
                               guidance="Check the webhooks in the Mamo dashboard, then register again.")
        differ = [name for name in ("url", "auth_header") if body.get(name) != sent[name]]
        came_back = body.get("enabled_events")
        if not isinstance(came_back, list) or set(map(str, came_back)) != set(sent["enabled_events"]):
            differ.append("enabled_events")
        if differ:
            try:
                self.delete_webhook(webhook_id)
            except MamoApiError as exc:
                self.log.warning("Could not delete the mis-registered Mamo webhook %s: %s", webhook_id, exc.args[0])
            raise MamoApiError(
                f"Mamo registered webhook {webhook_id} differently from what was sent ({', '.join(differ)} "
                "differ); it was deleted again",
                guidance="Mamo may have renamed a field of its webhook API: compare MAMO_API.md §8.1 with "
                         "Mamo's API reference, then register again.",
            )
        self.log.info("Registered Mamo webhook %s for %s (events %s)", webhook_id, url, ", ".join(sent["enabled_events"]))
        return body

    def list_webhooks(self) -> list[dict]:
        """``GET /webhooks``: every webhook of the business (a bare array; each shows its auth_header)."""
        body = self._call("GET", "/webhooks")
        if not isinstance(body, list) or not all(isinstance(w, dict) for w in body):
            raise MamoApiError("Mamo answered GET /webhooks with something other than an array of webhooks")
        return body

    def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{id}``; an unknown id is a ``MamoApiError`` with ``status_code`` 404."""
        self._call("DELETE", f"/webhooks/{quote(webhook_id, safe='')}")
        self.log.info("Deleted Mamo webhook %s", webhook_id)

    def fetch_charges(self, *, created_from: datetime, tz: str, company: str, period: str) -> list[Charge]:
        """Every charge created at or after ``created_from`` (naive wall-clock in ``tz``), once each.

        Pages ``GET /charges`` and de-duplicates by id (a later read of a charge replaces an earlier
        one). It stops before the last page only when every step seen so far went from newer to
        older or stayed equal, at least one went strictly older, and a whole page is older than
        ``created_from``; otherwise it reads every page. ``ChargeDataError`` names company, period,
        charge and field.
        """
        with _collector_paused():
            return self._scan(created_from, tz, company, period)

    def _scan(self, created_from: datetime, tz: str, company: str, period: str) -> list[Charge]:
        p = self.params
        path = f"/{p.resource}"
        per_page, page = p.per_page, 1
        fallbacks = [size for size in FALLBACK_PER_PAGE if size < per_page]
        charges: dict[str, Charge] = {}
        pages = read = stuck = 0
        previous: datetime | None = None
        went_older = went_newer = stopped_early = False
        while True:
            try:
                body = self._call("GET", path, {"page": page, "per_page": per_page})
            except MamoApiError as exc:
                status = getattr(exc, "status_code", None)
                if status == 404 and page > 1:
                    break  # a page past the end (§12 row 4)
                if status == 422 and page == 1 and fallbacks:
                    self.log.warning("Mamo refused per_page=%d (%s); trying %d", per_page, exc.args[0], fallbacks[0])
                    per_page = fallbacks.pop(0)
                    continue
                raise
            data, meta = _envelope(body, path, page)
            pages += 1
            if not data:
                break
            all_older, new = True, 0
            for raw in data:
                try:
                    charge = parse_charge(raw, tz=tz)
                except ChargeDataError as exc:
                    raise exc.in_context(company=company, period=period) from exc
                read += 1
                created = charge.created_local
                if previous is not None:
                    if created < previous:
                        went_older = True
                    elif created > previous:
                        went_newer = True
                previous = created
                if created >= created_from:
                    all_older = False
                if charge.id not in charges:
                    new += 1
                charges[charge.id] = charge
            self.log.debug("Mamo %s page %d: %d charges, %d new", path, page, len(data), new)
            if all_older and went_older and not went_newer:
                stopped_early = True
                break
            if "next_page" in meta:
                if meta["next_page"] is None:
                    break
            elif len(data) < per_page:
                break
            stuck = stuck + 1 if new == 0 else 0
            if stuck >= STUCK_PAGES:
                raise MamoApiError(f"Mamo paging of {path} does not advance: {stuck} pages in a row brought no new charge")
            page += 1
        kept = [charge for charge in charges.values() if charge.created_local >= created_from]
        order = "newest first" if went_older and not went_newer else ("unordered" if went_older else "not newest first")
        self.log.info(
            "Company %s, period %s: read %d pages of Mamo /%s (%d items, %d distinct charges, order %s); "
            "kept %d created since %s; %s",
            company, period, pages, p.resource, read, len(charges), order, len(kept), created_from.isoformat(sep=" "),
            "stopped early" if stopped_early else "read to the end",
        )  # fmt: skip
        return kept


def _envelope(body: Any, path: str, page: int) -> tuple[list, dict]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise MamoApiError(f"Mamo answered GET {path}?page={page} without the {{'data': [...]}} envelope")
    meta = body.get("pagination_meta")
    return body["data"], meta if isinstance(meta, dict) else {}


def _error_fields(response: requests.Response) -> tuple[str | None, list[str]]:
    """``error_code`` and ``messages`` of a Mamo error body, when it has them (5xx bodies may not)."""
    try:
        body = response.json()
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    messages = body.get("messages")
    if isinstance(messages, str):
        messages = [messages]
    texts = [str(m) for m in messages] if isinstance(messages, list) else []
    errors = body.get("errors")  # a list of strings, or an object keyed by field (§7)
    if isinstance(errors, list):
        texts += [str(e) for e in errors]
    elif isinstance(errors, dict):
        texts += [f"{name}: {problem}" for name, problem in errors.items()]
    code = body.get("error_code")
    return (str(code) if code is not None else None), texts
