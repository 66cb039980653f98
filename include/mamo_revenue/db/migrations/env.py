"""Alembic environment of the product DB, configured from Python (``mamo_revenue.db.session``).

``upgrade()`` hands over an open connection in ``config.attributes["connection"]``; the
command-line ``alembic -c include/mamo_revenue/db/alembic.ini`` path builds an engine from
``sqlalchemy.url`` (or the ``MAMO_REVENUE_DB_URL`` environment variable) instead.
"""

from __future__ import annotations

import os

from alembic import context

from mamo_revenue.db.models import Base, ExactDecimal, UtcDateTime
from mamo_revenue.db.session import VERSION_TABLE, engine_for_url

config = context.config
target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Render the project's portable types as what they are in the DB, so migrations stay standalone."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, ExactDecimal):
        return 'sa.Numeric(precision=7, scale=4).with_variant(sa.String(length=24), "sqlite")'
    return False


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == VERSION_TABLE)


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or os.environ["MAMO_REVENUE_DB_URL"],
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or VERSION_TABLE,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ["MAMO_REVENUE_DB_URL"]
    with engine_for_url(url).connect() as connection:
        run_migrations(connection)
        connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
