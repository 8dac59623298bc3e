import pytest


@pytest.fixture(autouse=True)
def _archive_settings(settings):
    """In-process retries wait seconds in production, not in tests; and the archiver's threads would
    not see a test's uncommitted rows, so tests archive one patient at a time unless they say so."""
    settings.PDAS_RETRY_BACKOFF_SECONDS = 0
    settings.PDAS_ARCHIVE_WORKERS = 1
