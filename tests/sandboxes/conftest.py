"""Sandbox tests: ``server``, the test module's sandbox (its ``SANDBOX_APP``) on a real socket."""

import pytest

from mamo_sandboxes.serving import serving


@pytest.fixture(scope="module")
def server(request):
    """The test module's sandbox (its ``SANDBOX_APP``) on a real socket, for the module's tests."""
    with serving(request.module.SANDBOX_APP()) as srv:
        yield srv
