-- Creates tokenwarden's token store: a login role and a database it owns, next to
-- Temporal's databases. The postgres image runs this once, as the superuser, when it
-- initialises an empty data volume (docker-compose.yml mounts it into
-- /docker-entrypoint-initdb.d). The password comes from the container's environment,
-- TOKENSTORE_DB_PASSWORD, so that no password is written in the repository.

\set ON_ERROR_STOP on
\getenv tokenstore_password TOKENSTORE_DB_PASSWORD

\if :{?tokenstore_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'TOKENSTORE_DB_PASSWORD is not set in the postgresql container (see .env.example)'; END $$;
\endif

-- :'name' interpolates the variable as a quoted SQL literal.
CREATE ROLE tokenwarden LOGIN PASSWORD :'tokenstore_password';
CREATE DATABASE tokenwarden OWNER tokenwarden;
REVOKE ALL ON DATABASE tokenwarden FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE tokenwarden TO tokenwarden;

-- Only the owner creates objects in the store's public schema.
\connect tokenwarden
ALTER SCHEMA public OWNER TO tokenwarden;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
