-- PDAS on PostgreSQL: the app's own role may read and append audit events, never change or remove them.
--
-- Run as the database owner (the role `manage.py migrate` runs as, here pdas_owner) in the database
-- (here pdas), after every `manage.py migrate` (new tables get their grants then); it can be re-run.
-- The web server, workers and beat connect as pdas_app. docs/audit.md explains each line.
--
--   CREATE ROLE pdas_owner LOGIN PASSWORD '...';
--   CREATE ROLE pdas_app LOGIN PASSWORD '...';
--   CREATE DATABASE pdas OWNER pdas_owner;
--   DATABASE_URL=postgres://pdas_owner:...@db/pdas manage.py migrate
--   psql "postgres://pdas_owner:...@db/pdas" -f deploy/postgresql-app-role.sql

GRANT CONNECT ON DATABASE pdas TO pdas_app;
GRANT USAGE ON SCHEMA public TO pdas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pdas_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO pdas_app;
-- The audit log: read and append only. TRUNCATE is never granted on any table.
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_auditevent FROM pdas_app;
-- Nothing to grant for the audit table's triggers (append-only, and the insert check of
-- audit/0004_mac_and_insert_check): they run for every role, and only the owner can switch them off.
-- Never make pdas_app the table's owner nor a member of pdas_owner: the owner can disable triggers.
