"""Keyed MACs on audit rows, and on PostgreSQL a trigger that checks every row inserted.

``mac`` and ``mac_key`` are added blank: rows written before this migration have no MAC
(``verify_audit`` reports them as written before MACs, docs/audit.md).

On PostgreSQL the trigger ``audit_auditevent_insert_check`` refuses an inserted row unless
- its time is the database's clock (not in the future, at most two minutes old): no back-dated row;
- it comes after the last row and links to it (``prev_hash`` is the last row's hash; the chain's
  advisory lock is taken first, as ``audit.services.record_event`` does): no row slipped into the chain;
- its ``hash`` is the SHA-256 of its content computed here, in SQL, exactly as
  ``AuditEvent.compute_hash`` does in Python (``json.dumps(sort_keys=True, ensure_ascii=False,
  separators=(",", ":"))``, rebuilt by ``audit_py_json``): no row with a made-up hash.
It binds every role; only the table's owner can switch it off (``ALTER TABLE ... DISABLE TRIGGER``),
and the app's role is not the owner (deploy/postgresql-app-role.sql). The MAC is not checked here:
the database never sees the key. Other databases: nothing (the MACs and checkpoints still apply).
"""
from django.db import migrations, models

# audit.services.CHAIN_LOCK_KEY, written out: a migration keeps the value it was written with.
CHAIN_LOCK_KEY = 5783819647284757588
# How old a row's time may be when it reaches the table: the writer reads the database's clock
# (clock_timestamp()) after the chain lock and inserts at once, so only a stall falls outside.
MAX_AGE = "2 minutes"

FORWARD = f"""
-- A JSON string as Python's json.dumps(ensure_ascii=False) writes it.
CREATE OR REPLACE FUNCTION audit_py_json_string(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    result text := replace(replace(value, E'\\\\', E'\\\\\\\\'), '"', E'\\\\"');
    code int;
BEGIN
    result := replace(replace(replace(result, E'\\n', E'\\\\n'), E'\\r', E'\\\\r'), E'\\t', E'\\\\t');
    result := replace(replace(result, E'\\b', E'\\\\b'), E'\\f', E'\\\\f');
    FOR code IN 1..31 LOOP
        IF code NOT IN (8, 9, 10, 12, 13) THEN
            result := replace(result, chr(code), E'\\\\u00' || lpad(to_hex(code), 2, '0'));
        END IF;
    END LOOP;
    RETURN '"' || result || '"';
END;
$$;

-- A float as Python's repr() writes it: the shortest digits that read back as the same double (what
-- PostgreSQL >= 12 prints with extra_float_digits = 1), placed as Python places them.
CREATE OR REPLACE FUNCTION audit_py_float(value float8) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET extra_float_digits = 1 AS $$
DECLARE
    shown text := lower(value::text);
    minus text := '';
    mantissa text;
    digits text;
    point int;
    decpt int;
    exponent int := 0;
BEGIN
    IF left(shown, 1) = '-' THEN
        minus := '-';
        shown := substr(shown, 2);
    END IF;
    mantissa := split_part(shown, 'e', 1);
    IF position('e' in shown) > 0 THEN
        exponent := split_part(shown, 'e', 2)::int;
    END IF;
    point := position('.' in mantissa);
    IF point = 0 THEN
        digits := mantissa;
        decpt := length(mantissa);
    ELSE
        digits := replace(mantissa, '.', '');
        decpt := point - 1;
    END IF;
    -- value = 0.DIGITS * 10^decpt, DIGITS without leading or trailing zeros
    WHILE length(digits) > 1 AND left(digits, 1) = '0' LOOP
        digits := substr(digits, 2);
        decpt := decpt - 1;
    END LOOP;
    digits := rtrim(digits, '0');
    IF digits = '' THEN
        RETURN minus || '0.0';
    END IF;
    decpt := decpt + exponent;
    IF decpt <= -4 OR decpt > 16 THEN
        exponent := decpt - 1;
        RETURN minus || left(digits, 1) || CASE WHEN length(digits) > 1 THEN '.' || substr(digits, 2) ELSE '' END
            || 'e' || CASE WHEN exponent < 0 THEN '-' ELSE '+' END
            || CASE WHEN abs(exponent) < 10 THEN '0' ELSE '' END || abs(exponent)::text;
    ELSIF decpt <= 0 THEN
        RETURN minus || '0.' || repeat('0', -decpt) || digits;
    ELSIF decpt >= length(digits) THEN
        RETURN minus || digits || repeat('0', decpt - length(digits)) || '.0';
    END IF;
    RETURN minus || left(digits, decpt) || '.' || substr(digits, decpt + 1);
END;
$$;

-- A JSON value as Python writes json.loads() of it back with json.dumps(sort_keys=True,
-- ensure_ascii=False, separators=(",", ":")): keys in code-point order (the "C" collation of UTF-8),
-- a number with a decimal point is a float.
CREATE OR REPLACE FUNCTION audit_py_json(value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    shown text;
BEGIN
    CASE jsonb_typeof(value)
    WHEN 'object' THEN
        RETURN '{{' || coalesce((SELECT string_agg(audit_py_json_string(key) || ':' || audit_py_json(item), ','
                                                   ORDER BY key COLLATE "C")
                                 FROM jsonb_each(value) AS m(key, item)), '') || '}}';
    WHEN 'array' THEN
        RETURN '[' || coalesce((SELECT string_agg(audit_py_json(item), ',' ORDER BY n)
                                FROM jsonb_array_elements(value) WITH ORDINALITY AS e(item, n)),
                               '') || ']';
    WHEN 'string' THEN
        RETURN audit_py_json_string(value #>> '{{}}');
    WHEN 'number' THEN
        shown := value #>> '{{}}';
        IF position('.' in shown) = 0 THEN
            RETURN shown;
        END IF;
        RETURN audit_py_float(shown::float8);
    WHEN 'boolean' THEN
        RETURN value #>> '{{}}';
    ELSE
        RETURN 'null';
    END CASE;
END;
$$;

-- AuditEvent.compute_hash, in SQL.
CREATE OR REPLACE FUNCTION audit_auditevent_hash(r audit_auditevent) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    utc timestamp := r.at AT TIME ZONE 'UTC';
    at_text text := to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM utc)::bigint % 1000000 <> 0 THEN '.' || to_char(utc, 'US') ELSE '' END
        || '+00:00';
BEGIN
    RETURN encode(sha256(convert_to(audit_py_json(jsonb_build_object(
        'at', at_text, 'actor', r.actor, 'event', r.event, 'institution', r.institution, 'mrns', r.mrns,
        'object_type', r.object_type, 'object_id', r.object_id, 'outcome', r.outcome, 'detail', r.detail,
        'prev_hash', r.prev_hash)), 'UTF8')), 'hex');
END;
$$;

CREATE OR REPLACE FUNCTION audit_auditevent_check_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_id bigint;
    head_hash text;
    now_here timestamptz;
BEGIN
    -- The writers' lock (audit.services): the head read below cannot change before this row commits.
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
    now_here := clock_timestamp();
    IF NEW.at > now_here OR NEW.at < now_here - interval '{MAX_AGE}' THEN
        RAISE EXCEPTION 'audit event refused: its time % is not the database''s current time %', NEW.at, now_here
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT id, hash INTO head_id, head_hash FROM audit_auditevent ORDER BY id DESC LIMIT 1;
    IF head_id IS NOT NULL AND NEW.id <= head_id THEN
        RAISE EXCEPTION 'audit event refused: id % is not after the last row %', NEW.id, head_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM coalesce(head_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION 'audit event refused: it does not link to the last row'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.hash IS DISTINCT FROM audit_auditevent_hash(NEW) THEN
        RAISE EXCEPTION 'audit event refused: its hash is not the hash of its content'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_auditevent_insert_check
    BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_check_insert();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_auditevent_insert_check ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_check_insert();
DROP FUNCTION IF EXISTS audit_auditevent_hash(audit_auditevent);
DROP FUNCTION IF EXISTS audit_py_json(jsonb);
DROP FUNCTION IF EXISTS audit_py_float(float8);
DROP FUNCTION IF EXISTS audit_py_json_string(text);
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the % of RAISE is not a placeholder

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_labels")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(blank=True, default="", max_length=64, verbose_name="MAC"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="mac_key",
            field=models.CharField(blank=True, default="", help_text="Fingerprint of the key the MAC was made with",
                                   max_length=16, verbose_name="MAC key"),
        ),
        migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(BACKWARD)),
    ]
