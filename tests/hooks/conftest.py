"""Hook tests: tokens in the product's ``DbTokenStore`` on PostgreSQL (``tests/token_stores.py``)."""

from token_stores import make_store, product_engine  # noqa: F401 (fixtures)
