"""On PostgreSQL, refuse UPDATE and DELETE on the audit table in the database itself.

The model refuses them too, but a trigger also stops raw SQL, a database console and a compromised
app process. It binds the table's owner as well; only a superuser dropping the trigger gets past it,
and that is a DDL change a database log shows. TRUNCATE is not a row operation: the app's role must
not hold the TRUNCATE privilege (docs/audit.md gives the grants). Other databases: see docs/audit.md.
"""
from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % on audit_auditevent refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_auditevent_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_refuse_change();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the % of RAISE is not a placeholder

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(BACKWARD))]
