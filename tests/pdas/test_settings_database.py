"""pdas.settings: PostgreSQL connections run without JIT compilation (docs/configuration.md, DATABASE_CONN_MAX_AGE)."""
from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(connection.vendor != "postgresql", reason="JIT is PostgreSQL's: the PostgreSQL pass runs this")
def test_postgresql_connections_have_jit_off():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
