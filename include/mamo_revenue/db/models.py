"""SQLAlchemy 2 models of the product database (never Airflow's metadata DB).

The same schema runs on PostgreSQL (production) and SQLite (the embedded default). Two column
types smooth over SQLite: ``UtcDateTime`` (aware UTC in, aware UTC out; SQLite stores no zone)
and ``ExactDecimal`` (a ``Decimal`` that SQLite keeps as text, so a VAT rate is never a float).
Choices that are enforced by the database are CHECK constraints on plain strings rather than
native enums, so adding a ledger platform or a status never needs an ``ALTER TYPE``.

Invariants owned here:
- every aware timestamp is stored and returned as UTC;
- ``revenue_events`` is append-only and unique per ``(company_id, event_key)``;
- ``sync_records`` is unique per ``(company_id, period_key)``;
- ledger tokens are stored only as Fernet tokens (``*_enc`` columns).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

# --- vocabularies --------------------------------------------------------------------------------


class CompanyStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


class SyncStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    POSTED = "posted"
    NOTHING_TO_POST = "nothing_to_post"
    FAILED = "failed"


#: A period in one of these states is closed: it is never claimed or posted again.
CLOSED_SYNC_STATUSES = frozenset({SyncStatus.POSTED, SyncStatus.NOTHING_TO_POST})


class EventKind(StrEnum):
    SALE = "sale"
    FEE = "fee"
    FEE_VAT = "fee_vat"
    REFUND = "refund"


#: The mapping keys of a journal's categories (DESIGN.md, "Journal").
MAPPING_CATEGORIES: tuple[str, ...] = (
    "clearing",
    "sales",
    "refunds",
    "fees",
    "vat_payable",
    "vat_refunds",
    "vat_recoverable",
)

FREQUENCIES = ("daily", "weekly")
COMPANY_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PLATFORM_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def validate_company_id(value: str) -> str:
    """A company id is a slug: it appears in DAG ids, references and URLs."""
    if not isinstance(value, str) or not COMPANY_ID_PATTERN.match(value):
        raise ValueError(
            f"company id {value!r} must be 1-40 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
        )
    return value


def _in_sql(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


# --- portable column types -----------------------------------------------------------------------


class UtcDateTime(sa.types.TypeDecorator):
    """An aware datetime, stored as UTC; naive values are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the product DB stores aware UTC instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExactDecimal(sa.types.TypeDecorator):
    """A ``Decimal`` kept exactly: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = sa.Numeric(7, 4, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(24))
        return dialect.type_descriptor(sa.Numeric(7, 4, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("a float is never a rate or an amount here; pass a Decimal or a string")
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


#: BIGINT on PostgreSQL; INTEGER on SQLite so the primary key aliases the rowid and autoincrements.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# --- companies and their ledger -------------------------------------------------------------------


class Company(Base):
    """One Mamo merchant and the settings its journals are built with."""

    __tablename__ = "companies"
    __table_args__ = (
        sa.CheckConstraint(f"frequency IN ({_in_sql(FREQUENCIES)})", name="frequency"),
        sa.CheckConstraint(f"status IN ({_in_sql(CompanyStatus)})", name="status"),
        sa.CheckConstraint(
            "sales_vat_rate IS NULL OR (CAST(sales_vat_rate AS NUMERIC) >= 0 AND CAST(sales_vat_rate AS NUMERIC) < 1)",
            name="sales_vat_rate",
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Asia/Dubai")
    frequency: Mapped[str] = mapped_column(sa.String(16), default="daily")
    base_currency: Mapped[str] = mapped_column(sa.String(3), default="AED")
    #: None: the company charges no sales VAT. Prices are VAT-inclusive.
    sales_vat_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=Decimal("0.05"))
    status: Mapped[str] = mapped_column(sa.String(16), default=CompanyStatus.ACTIVE.value)
    #: The first period to sync (its first day).
    first_period: Mapped[date | None] = mapped_column(sa.Date())
    mamo_conn_id: Mapped[str] = mapped_column(sa.String(250), default="mamo_default")
    ledger_platform: Mapped[str] = mapped_column(sa.String(40), default="xero")
    ledger_conn_id: Mapped[str] = mapped_column(sa.String(250), default="xero_default")
    #: The company's own Mamo API key, as a Fernet token (migration 0003). None: the key of
    #: ``mamo_conn_id`` is used. The base URL always comes from that connection.
    mamo_api_key_enc: Mapped[str | None] = mapped_column(sa.Text())
    #: The business ``GET /me`` named for that key, shown in the UI instead of the key.
    mamo_business_name: Mapped[str | None] = mapped_column(sa.String(200))
    #: The static ``Authorization`` header Mamo echoes on webhook deliveries, as a Fernet token.
    webhook_secret_enc: Mapped[str | None] = mapped_column(sa.Text())
    #: The id of the webhook registered with Mamo for the company's receiver (migration 0004), or None.
    mamo_webhook_id: Mapped[str | None] = mapped_column(sa.String(100))
    last_scan_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    @validates("id")
    def _check_id(self, _key: str, value: str) -> str:
        return validate_company_id(value)

    @validates("name")
    def _check_name(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a company needs a name")
        return value.strip()

    @validates("timezone")
    def _check_timezone(self, _key: str, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Dubai)") from exc
        return value

    @validates("frequency")
    def _check_frequency(self, _key: str, value: str) -> str:
        value = str(value)
        if value not in FREQUENCIES:
            raise ValueError(f"frequency {value!r} must be one of {', '.join(FREQUENCIES)}")
        return value

    @validates("base_currency")
    def _check_currency(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not CURRENCY_PATTERN.match(value):
            raise ValueError(f"base currency {value!r} must be an ISO 4217 code such as AED")
        return value

    @validates("sales_vat_rate")
    def _check_rate(self, _key: str, value: Decimal | str | None) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("pass the VAT rate as a Decimal or a string such as '0.05', never a float")
        rate = Decimal(value)
        if not (Decimal(0) <= rate < Decimal(1)) or rate.as_tuple().exponent < -4:  # type: ignore[operator]
            raise ValueError(f"sales VAT rate {value!r} must be a fraction in [0, 1) with at most 4 decimals")
        return rate

    @validates("status")
    def _check_status(self, _key: str, value: str) -> str:
        return CompanyStatus(value).value

    @validates("ledger_platform")
    def _check_platform(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not PLATFORM_PATTERN.match(value):
            raise ValueError(
                f"ledger platform {value!r} must be a lower-case word such as xero or zoho_books"
            )
        return value

    @validates("last_scan_at", "created_at", "updated_at")
    def _check_aware(self, key: str, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{key} must be an aware datetime")
        return value

    def __repr__(self) -> str:
        return f"Company(id={self.id!r}, status={self.status!r}, ledger={self.ledger_platform!r})"


class LedgerConnection(Base):
    """The OAuth grant that lets the product post to one company's ledger; one per company.

    Tokens are stored only as Fernet tokens; see ``db/crypto.py`` and ``db/tokens.py``.
    """

    __tablename__ = "ledger_connections"
    __table_args__ = (sa.CheckConstraint(f"status IN ({_in_sql(ConnectionStatus)})", name="status"),)

    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"), primary_key=True)
    platform: Mapped[str] = mapped_column(sa.String(40))
    tenant_id: Mapped[str | None] = mapped_column(sa.String(100))
    tenant_name: Mapped[str | None] = mapped_column(sa.String(200))
    access_token_enc: Mapped[str | None] = mapped_column(sa.Text())
    refresh_token_enc: Mapped[str | None] = mapped_column(sa.Text())
    access_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(sa.String(20), default=ConnectionStatus.CONNECTED.value)
    status_reason: Mapped[str | None] = mapped_column(sa.Text())
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Values the ledger tied to the grant (``TokenSet.extra``): Zoho's ``api_domain`` and
    #: ``accounts_server``, i.e. the grant's data centre. Not secret, so kept as plain JSON.
    grant_extra: Mapped[dict[str, str] | None] = mapped_column(sa.JSON())

    @validates("status")
    def _check_status(self, _key: str, value: str) -> str:
        return ConnectionStatus(value).value

    def __repr__(self) -> str:  # never print a token, even encrypted
        return (
            f"LedgerConnection(company_id={self.company_id!r}, platform={self.platform!r}, "
            f"tenant_id={self.tenant_id!r}, status={self.status!r})"
        )


class GlMapping(Base):
    """Which ledger account one journal category posts to, for one company."""

    __tablename__ = "gl_mappings"
    __table_args__ = (sa.CheckConstraint(f"category IN ({_in_sql(MAPPING_CATEGORIES)})", name="category"),)

    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"), primary_key=True)
    category: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.String(100))
    account_code: Mapped[str | None] = mapped_column(sa.String(50))
    account_name: Mapped[str | None] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    @validates("category")
    def _check_category(self, _key: str, value: str) -> str:
        if value not in MAPPING_CATEGORIES:
            raise ValueError(f"mapping category {value!r} must be one of {', '.join(MAPPING_CATEGORIES)}")
        return value


# --- what Mamo said, and what we derived ----------------------------------------------------------


class ChargeSnapshot(Base):
    """The latest state of one Mamo charge as Mamo reported it (upserted by id on every scan)."""

    __tablename__ = "charge_snapshots"
    __table_args__ = (sa.Index(None, "company_id", "created_local"),)

    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"), primary_key=True)
    charge_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(40))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger())
    refund_minor: Mapped[int] = mapped_column(sa.BigInteger(), default=0)
    #: Wall-clock time in the company's zone, naive (Mamo's ``created_date`` carries no zone).
    created_local: Mapped[datetime] = mapped_column(sa.DateTime(timezone=False))
    settlement_currency: Mapped[str | None] = mapped_column(sa.String(3))
    settlement_minor: Mapped[int | None] = mapped_column(sa.BigInteger())
    settlement_date: Mapped[date | None] = mapped_column(sa.Date())
    fee_currency: Mapped[str | None] = mapped_column(sa.String(3))
    fee_minor: Mapped[int | None] = mapped_column(sa.BigInteger())
    fee_vat_minor: Mapped[int | None] = mapped_column(sa.BigInteger())
    #: ``"field: problem; …"``, empty when the charge is well formed.
    problems: Mapped[str] = mapped_column(sa.Text(), default="")
    #: The charge object as Mamo sent it (JSON text, numbers exactly as sent).
    raw: Mapped[str | None] = mapped_column(sa.Text())
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RevenueEvent(Base):
    """One dated revenue fact, recorded once and never changed (append-only)."""

    __tablename__ = "revenue_events"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "event_key"),
        sa.Index(None, "company_id", "period_key"),
        sa.CheckConstraint(f"kind IN ({_in_sql(EventKind)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"))
    #: ``sale:<id>``, ``fee:<id>``, ``fee_vat:<id>``, ``refund:<id>:<cumulative minor>``
    event_key: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))
    charge_id: Mapped[str] = mapped_column(sa.String(100))
    period_key: Mapped[str] = mapped_column(sa.String(16))
    #: Base currency minor units, positive.
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger())
    #: Refunds only: the charge's cumulative refund in its own currency.
    cumulative_refund_minor: Mapped[int | None] = mapped_column(sa.BigInteger())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    run_id: Mapped[str | None] = mapped_column(sa.String(250))


# --- posting state ---------------------------------------------------------------------------------


class SyncRecord(Base):
    """The posting state of one (company, period): claimed → posted / nothing_to_post / failed."""

    __tablename__ = "sync_records"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "period_key"),
        sa.CheckConstraint(f"status IN ({_in_sql(SyncStatus)})", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"))
    period_key: Mapped[str] = mapped_column(sa.String(16))
    period_label: Mapped[str] = mapped_column(sa.String(16))
    period_first_day: Mapped[date] = mapped_column(sa.Date())
    period_last_day: Mapped[date] = mapped_column(sa.Date())
    reference: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(20), default=SyncStatus.PENDING.value)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(250))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0)
    ledger_journal_id: Mapped[str | None] = mapped_column(sa.String(100))
    ledger_url: Mapped[str | None] = mapped_column(sa.Text())
    #: Category → minor units, plus whatever the journal builder reports.
    totals: Mapped[dict | None] = mapped_column(sa.JSON())
    line_count: Mapped[int | None] = mapped_column(sa.Integer())
    error_class: Mapped[str | None] = mapped_column(sa.String(200))
    error_message: Mapped[str | None] = mapped_column(sa.Text())
    guidance: Mapped[str | None] = mapped_column(sa.Text())
    #: The run that last changed the record.
    run_id: Mapped[str | None] = mapped_column(sa.String(250))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_SYNC_STATUSES

    def __repr__(self) -> str:
        return (
            f"SyncRecord(company_id={self.company_id!r}, period_key={self.period_key!r}, "
            f"status={self.status!r}, claimed_by={self.claimed_by!r}, attempts={self.attempts!r})"
        )


# --- the Revenue accounting page (migration 0003) ---------------------------------------------------


class OAuthState(Base):
    """One ledger consent round trip started from the Revenue accounting page.

    Only the SHA-256 of ``state`` is stored, so a copy of the table cannot answer a callback. A row
    is consumed once (``consumed_at``), by the user who started it, before it expires; a consent that
    covers several organisations parks the exchanged grant (encrypted) under a second single-use
    secret (``choice_hash``) until the user picks one.
    """

    __tablename__ = "oauth_states"
    __table_args__ = (sa.Index(None, "choice_hash"),)

    state_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"))
    platform: Mapped[str] = mapped_column(sa.String(40))
    redirect_uri: Mapped[str | None] = mapped_column(sa.Text())
    code_verifier_enc: Mapped[str | None] = mapped_column(sa.Text())
    started_by: Mapped[str] = mapped_column(sa.String(250))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    choice_hash: Mapped[str | None] = mapped_column(sa.String(64))
    grant_enc: Mapped[str | None] = mapped_column(sa.Text())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:  # never the verifier or the grant, even encrypted
        return f"OAuthState(company_id={self.company_id!r}, platform={self.platform!r}, by={self.started_by!r})"


class MamoWebhookEvent(Base):
    """One Mamo webhook event, recorded once however often Mamo delivers it.

    ``event_key`` is ``<event type>:<charge id>:<cumulative refund minor>`` (``payment.*`` read as
    ``charge.*``), so a repeated delivery only counts ``deliveries`` up, while a later refund of the
    same charge is a new event (MAMO_API.md §8.3). Amounts are never booked from here: the sync re-reads
    the charge from the API; ``received_at`` says when Mamo first announced the event.
    """

    __tablename__ = "mamo_webhook_events"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "event_key"),
        sa.Index(None, "company_id", "charge_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"))
    event_key: Mapped[str] = mapped_column(sa.String(250))
    event_type: Mapped[str] = mapped_column(sa.String(60))
    charge_id: Mapped[str] = mapped_column(sa.String(100))
    charge_status: Mapped[str | None] = mapped_column(sa.String(40))
    #: The charge's cumulative refund as the delivery stated it (minor units of its currency); a key, not a booking.
    cumulative_refund_minor: Mapped[int | None] = mapped_column(sa.BigInteger())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    deliveries: Mapped[int] = mapped_column(sa.Integer(), default=1)


class CompanyActivity(Base):
    """What people did on the Revenue accounting page (who, when, what): the company's audit trail."""

    __tablename__ = "company_activity"
    __table_args__ = (sa.Index(None, "company_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("companies.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    user_name: Mapped[str] = mapped_column(sa.String(250))
    #: added, settings, connected, connect_failed, mapped, sync, backfill, resync, disconnected, webhook_secret,
    #: webhook_registered, webhook_register_failed
    action: Mapped[str] = mapped_column(sa.String(40))
    period_label: Mapped[str | None] = mapped_column(sa.String(32))
    run_id: Mapped[str | None] = mapped_column(sa.String(250))
    #: Plain words for the page; never a token, key or secret.
    detail: Mapped[str | None] = mapped_column(sa.Text())
