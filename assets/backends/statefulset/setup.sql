-- Applied on the primary by lib.sh apply_setup (at initialisation and whenever it or the Secret
-- changes). psql variables: update_extension, replication_user, replication_password, ferretdb_user, ferretdb_password,
-- state_file.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
-- The passwords below travel as SQL text: this session never logs its statements, whatever
-- log_statement or log_min_duration_statement say (a superuser session may change both).
SET log_statement = 'none';
SET log_min_duration_statement = -1;

-- Replication role: REPLICATION LOGIN and nothing else.
SELECT format('CREATE ROLE %I', :'replication_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'replication_user') \gexec
ALTER ROLE :"replication_user" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS
  PASSWORD :'replication_password';
-- pg_rewind reads the new primary's files through these functions when a former primary rejoins.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO :"replication_user";
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO :"replication_user";
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO :"replication_user";
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO :"replication_user";

-- FerretDB v2 stores documents through the DocumentDB extension; a new image may ship a newer
-- version (the agent re-applies this file when the image's version changes). psql variable
-- update_extension: false while a member's image does not ship that version yet (agent.sh).
CREATE EXTENSION IF NOT EXISTS documentdb CASCADE;
\if :update_extension
ALTER EXTENSION documentdb UPDATE;
\endif
-- Once the extension is loaded, any SQL with an operator or a function call (even
-- SELECT pg_is_in_recovery()) needs these schemas: the replication role checks slots and the
-- primary with SQL, and pg_rewind reads files through functions. Usage only: no table, no function.
GRANT USAGE ON SCHEMA documentdb_core, documentdb_api_internal, documentdb_api_catalog, documentdb_api
  TO :"replication_user";

-- FerretDB's role: not a superuser; DocumentDB's admin role, and CREATEROLE so that MongoDB
-- createUser works (MongoDB users are PostgreSQL roles). DocumentDB grants its roles to the
-- users it creates as the calling role: from PostgreSQL 16 that takes ADMIN OPTION.
SELECT format('CREATE ROLE %I', :'ferretdb_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'ferretdb_user') \gexec
ALTER ROLE :"ferretdb_user" WITH LOGIN INHERIT CREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS
  PASSWORD :'ferretdb_password';
GRANT documentdb_admin_role, documentdb_readonly_role, pg_read_all_data TO :"ferretdb_user" WITH ADMIN OPTION;

-- The metrics exporter's role (the `metrics` sidecar, when monitoring is on): pg_monitor and
-- nothing else. No password: it logs in only from the pod's loopback (127.0.0.1), which
-- pg_hba.conf trusts for this role and the postgres database only; from anywhere else a role
-- without a password cannot authenticate. Schema usage as for the replication role above.
SELECT 'CREATE ROLE postgres_exporter'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'postgres_exporter') \gexec
ALTER ROLE postgres_exporter WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD NULL CONNECTION LIMIT 5;
GRANT pg_monitor TO postgres_exporter;
GRANT USAGE ON SCHEMA documentdb_core, documentdb_api_internal, documentdb_api_catalog, documentdb_api
  TO postgres_exporter;

-- For the exporter (fdb_pg_cluster_identity): what the state sidecar last read of the cluster's
-- recorded system identifier ($STATE_DIR/cluster-state, on the primary StatefulSet's pod only),
-- set against this server's own, and how old that reading is. Reading a file takes a superuser:
-- the function runs as its owner, reads only that file, and returns two numbers; the exporter's
-- role may call it and nothing else in its schema. No row where the file does not exist.
CREATE SCHEMA IF NOT EXISTS ferretdb_monitoring;
REVOKE ALL ON SCHEMA ferretdb_monitoring FROM PUBLIC;
SELECT format($f$
  CREATE OR REPLACE FUNCTION ferretdb_monitoring.cluster_identity(OUT recorded int, OUT state_age_seconds float8)
  RETURNS SETOF record LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $body$
    SELECT (btrim(pg_read_file(%1$L, 0, 100, true), E' \n') = 'initialized ' || c.system_identifier)::int,
      extract(epoch FROM now() - f.modification)::float8
    FROM pg_control_system() c, pg_stat_file(%1$L, true) f
    WHERE f.modification IS NOT NULL
  $body$$f$, :'state_file') \gexec
REVOKE ALL ON FUNCTION ferretdb_monitoring.cluster_identity() FROM PUBLIC;
GRANT USAGE ON SCHEMA ferretdb_monitoring TO postgres_exporter;
GRANT EXECUTE ON FUNCTION ferretdb_monitoring.cluster_identity() TO postgres_exporter;
