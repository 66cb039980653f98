"""Hook tests: tokens in the product's ``DbTokenStore`` on PostgreSQL (``tests/token_stores.py``), and
each ledger hook module's sandbox (``server``, from the module's ``create_app``)."""

import pytest
from token_stores import make_store, product_engine  # noqa: F401 (fixtures)

from mamo_sandboxes.serving import serving


@pytest.fixture(scope="module")
def server(request):
    """The test module's sandbox (its ``SANDBOX_APP``) on a real socket, for the module's tests."""
    with serving(request.module.SANDBOX_APP()) as srv:
        yield srv
