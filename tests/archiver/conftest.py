import pytest


@pytest.fixture(autouse=True)
def _no_retry_backoff(settings):
    """In-process retries of transient failures wait seconds in production; not in tests."""
    settings.PDAS_RETRY_BACKOFF_SECONDS = 0
