"""Companies, their account mappings and their ledger connections.

Every function takes an open ``Session`` and leaves committing to the caller (``session_scope``).
Settings are validated by the models on assignment, so an invalid company never reaches a flush.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.models import (
    MAPPING_CATEGORIES,
    Company,
    CompanyStatus,
    ConnectionStatus,
    GlMapping,
    LedgerConnection,
    utcnow,
    validate_company_id,
)
from mamo_revenue.hooks.tokens import TokenSet
from mamo_revenue.journal import MappedAccount  # the mapping record the journal engine reads

#: Settings ``upsert_company`` accepts (everything but the id and the timestamps).
COMPANY_FIELDS = frozenset(
    {
        "name",
        "timezone",
        "frequency",
        "base_currency",
        "sales_vat_rate",
        "status",
        "first_period",
        "mamo_conn_id",
        "ledger_platform",
        "ledger_conn_id",
        "last_scan_at",
    }
)
_CONNECTION_FIELDS = frozenset({"platform", "tenant_id", "tenant_name", "status", "status_reason"})


class UnknownCompany(LookupError):
    """No company with this id exists in the product DB."""


# --- companies ---------------------------------------------------------------------------------------


def upsert_company(session: Session, company_id: str, **settings: Any) -> Company:
    """Create the company, or change only the settings passed; returns it (flushed).

    A new company needs ``name``; every other setting has the model's default.
    ``sales_vat_rate=None`` means "charges no sales VAT" (not "leave unchanged").
    """
    unknown = set(settings) - COMPANY_FIELDS
    if unknown:
        raise TypeError(f"unknown company setting(s): {', '.join(sorted(unknown))}")
    company = session.get(Company, validate_company_id(company_id))
    if company is None:
        if not settings.get("name"):
            raise ValueError(f"company {company_id!r} is new and needs a name")
        company = Company(id=company_id, **settings)
        # Defaults applied now (not at flush) so the returned object is complete and validated.
        for column in Company.__table__.columns:
            if (
                getattr(company, column.key) is None
                and column.key not in settings
                and column.default is not None
            ):
                arg = column.default.arg
                setattr(company, column.key, arg(None) if callable(arg) else arg)
        session.add(company)
    else:
        for key, value in settings.items():
            setattr(company, key, value)
    session.flush()
    return company


def get_company(session: Session, company_id: str) -> Company | None:
    """The company, or None."""
    return session.get(Company, company_id)


def require_company(session: Session, company_id: str) -> Company:
    """The company, or ``UnknownCompany``."""
    company = session.get(Company, company_id)
    if company is None:
        raise UnknownCompany(f"no company {company_id!r} in the product database")
    return company


def list_companies(session: Session, *, status: str | CompanyStatus | None = None) -> list[Company]:
    """Companies sorted by id (the order DAGs are generated in), optionally of one status."""
    query = sa.select(Company).order_by(Company.id)
    if status is not None:
        query = query.where(Company.status == CompanyStatus(status).value)
    return list(session.scalars(query))


def set_company_status(session: Session, company_id: str, status: str | CompanyStatus) -> Company:
    """Pause, resume or disconnect a company."""
    company = require_company(session, company_id)
    company.status = CompanyStatus(status).value
    session.flush()
    return company


def touch_last_scan(session: Session, company_id: str, at: datetime | None = None) -> None:
    """Record when Mamo was last scanned for this company."""
    session.execute(
        sa.update(Company)
        .where(Company.id == company_id)
        .values(last_scan_at=at or utcnow(), updated_at=utcnow())
    )


# --- account mappings --------------------------------------------------------------------------------


def get_mappings(session: Session, company_id: str) -> dict[str, MappedAccount]:
    """Category → account for every mapped category of the company (unmapped ones are absent)."""
    rows = session.scalars(sa.select(GlMapping).where(GlMapping.company_id == company_id))
    return {row.category: MappedAccount(row.account_id, row.account_code, row.account_name) for row in rows}


def set_mapping(session: Session, company_id: str, category: str, account: MappedAccount | None) -> None:
    """Map one category to an account, or remove the mapping with ``None``."""
    if category not in MAPPING_CATEGORIES:
        raise ValueError(f"mapping category {category!r} must be one of {', '.join(MAPPING_CATEGORIES)}")
    row = session.get(GlMapping, (company_id, category))
    if account is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(
            GlMapping(
                company_id=company_id,
                category=category,
                account_id=account.account_id,
                account_code=account.code,
                account_name=account.name,
            )
        )
    else:
        row.account_id, row.account_code, row.account_name = account.account_id, account.code, account.name
    session.flush()


def set_mappings(
    session: Session, company_id: str, mappings: Mapping[str, MappedAccount | None], *, replace: bool = False
) -> dict[str, MappedAccount]:
    """Set several mappings at once; with ``replace`` the categories not given are unmapped."""
    require_company(session, company_id)
    if replace:
        for category in set(MAPPING_CATEGORIES) - set(mappings):
            set_mapping(session, company_id, category, None)
    for category, account in mappings.items():
        set_mapping(session, company_id, category, account)
    return get_mappings(session, company_id)


# --- ledger connections ------------------------------------------------------------------------------


def get_ledger_connection(session: Session, company_id: str) -> LedgerConnection | None:
    """The company's ledger connection, or None before it was ever connected."""
    return session.get(LedgerConnection, company_id)


def connect_ledger(
    session: Session,
    company_id: str,
    *,
    platform: str,
    tokens: TokenSet,
    cipher: TokenCipher,
    tenant_name: str | None = None,
    now: datetime | None = None,
) -> LedgerConnection:
    """Store a fresh grant (first connection or reconnection): tokens encrypted, status connected."""
    require_company(session, company_id)
    now = now or utcnow()
    row = session.get(LedgerConnection, company_id)
    if row is None:
        row = LedgerConnection(company_id=company_id)
        session.add(row)
    row.platform = platform
    row.tenant_name = tenant_name
    row.connected_at = now
    row.grant_extra = None  # a new grant brings its own values (or none), never the old grant's
    store_tokens(row, tokens, cipher, now=now)
    session.flush()
    return row


def update_ledger_connection(session: Session, company_id: str, **fields: Any) -> LedgerConnection:
    """Change plain fields (platform, tenant, status, status_reason); tokens go through ``store_tokens``."""
    unknown = set(fields) - _CONNECTION_FIELDS
    if unknown:
        raise TypeError(f"cannot set {', '.join(sorted(unknown))} on a ledger connection here")
    row = session.get(LedgerConnection, company_id)
    if row is None:
        raise UnknownCompany(f"company {company_id!r} has no ledger connection")
    if "status" in fields:
        fields["status"] = ConnectionStatus(fields["status"]).value
    for key, value in fields.items():
        setattr(row, key, value)
    session.flush()
    return row


def store_tokens(
    row: LedgerConnection, tokens: TokenSet, cipher: TokenCipher, *, now: datetime | None = None
) -> None:
    """Write a token set onto the row, encrypted; the grant is usable again (status connected)."""
    if not tokens.refresh_token:
        raise ValueError("a token set without a refresh token cannot be stored")
    row.access_token_enc = cipher.encrypt(tokens.access_token) if tokens.access_token else None
    row.refresh_token_enc = cipher.encrypt(tokens.refresh_token)
    row.access_expires_at = tokens.access_expires_at
    if tokens.tenant_id is not None:
        row.tenant_id = tokens.tenant_id
    if tokens.extra:  # a refresh that carries none keeps the grant's (the data centre never changes)
        row.grant_extra = dict(tokens.extra)
    row.refreshed_at = now or utcnow()
    row.status = ConnectionStatus.CONNECTED.value
    row.status_reason = None


def read_tokens(row: LedgerConnection, cipher: TokenCipher) -> TokenSet:
    """The row's tokens, decrypted (``TokenDecryptionError`` with the wrong secret)."""
    if not row.refresh_token_enc:
        raise ValueError(f"company {row.company_id!r}: the ledger connection holds no refresh token")
    return TokenSet(
        access_token=cipher.decrypt(row.access_token_enc) if row.access_token_enc else None,
        refresh_token=cipher.decrypt(row.refresh_token_enc),
        access_expires_at=row.access_expires_at,
        tenant_id=row.tenant_id,
        extra=dict(row.grant_extra or {}),
    )
