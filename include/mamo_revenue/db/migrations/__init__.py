"""Alembic migrations of the product database (a package so that it ships with the wheel)."""
