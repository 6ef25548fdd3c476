-- aws_s3 1.0 (pgferry): the RDS/Aurora aws_s3 SQL surface for self-hosted
-- PostgreSQL, in SQL and PL/pgSQL only. The server fetches and uploads
-- through pgferry's program (@PROGRAM@), run by COPY ... PROGRAM.
--
-- Security model (see README "CREATE EXTENSION aws_s3"):
-- * Everything the caller's privileges should govern runs as the caller
--   (SECURITY INVOKER): resolving the table, the INSERT into it (so INSERT
--   and column privileges, RLS, triggers, defaults and domain checks apply
--   exactly as for the caller), and the export query.
-- * Only what starts pgferry's program runs as the extension owner
--   (SECURITY DEFINER). Import: a definer function creates a foreign table
--   of the private file_fdw server below, whose `program` option is fixed
--   text plus a random hex id, grants SELECT on it to the calling role only
--   and returns; the caller then runs INSERT INTO its table SELECT FROM that
--   foreign table, so rows stream from the program through COPY's parser
--   into the caller's table with no copy on disk, and every check on the
--   write is the caller's. Export: COPY ... TO PROGRAM from a temp table of
--   the caller's session that the caller filled with its query. Options are
--   re-rendered from a whitelist; nothing the caller passes reaches a shell.
-- * The definer steps run only when called from aws_s3._import /
--   aws_s3._export (aws_s3._assert_caller checks the call stack), so what
--   they create lives and dies inside the caller's own call.
-- * Requests (bucket, key, region, options, keys) go to the program in a
--   file of a 0700 spool directory inside the data directory, written from a
--   variable (never a literal in statement text); the program deletes it on
--   read. An import's request, the one with keys, stays in a transaction-
--   local setting until the program is running and waiting for it (see
--   aws_s3._gate). Results come back in a status file read with pg_read_file.
\echo Use "CREATE EXTENSION aws_s3 CASCADE" to load this file. \quit

-- ---------------------------------------------------------------------------
-- A private foreign-data wrapper on file_fdw's C handler (shipped with every
-- PostgreSQL, no CREATE EXTENSION file_fdw needed). file_fdw checks its
-- `program` option when the option is set (here: only by the definer
-- function, as the extension owner), not when the table is scanned, and a
-- scan streams the program's output through COPY's parser. Nobody else gets
-- any privilege on the wrapper, the server or the handler functions; the
-- foreign tables live in aws_s3_private, created and dropped by the import
-- within the caller's transaction (so no other session ever sees one).
CREATE SCHEMA aws_s3_private;
GRANT USAGE ON SCHEMA aws_s3_private TO PUBLIC;
CREATE FUNCTION aws_s3_private.fdw_handler() RETURNS fdw_handler
    AS '$libdir/file_fdw', 'file_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION aws_s3_private.fdw_validator(text[], oid) RETURNS void
    AS '$libdir/file_fdw', 'file_fdw_validator' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION aws_s3_private.fdw_handler(), aws_s3_private.fdw_validator(text[], oid)
    FROM PUBLIC;
CREATE FOREIGN DATA WRAPPER aws_s3_fdw
    HANDLER aws_s3_private.fdw_handler VALIDATOR aws_s3_private.fdw_validator;
CREATE SERVER aws_s3_fetch FOREIGN DATA WRAPPER aws_s3_fdw;
REVOKE ALL ON FOREIGN DATA WRAPPER aws_s3_fdw FROM PUBLIC;
REVOKE ALL ON FOREIGN SERVER aws_s3_fetch FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal helpers. SECURITY INVOKER with EXECUTE revoked from PUBLIC: they
-- act with the definer's rights only when a definer function calls them, and
-- a direct call by anyone else fails on the first file access.

CREATE FUNCTION aws_s3._command(p_mode text, p_id text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_mode NOT IN ('prepare', 'options', 'import', 'export') OR p_id !~ '^[0-9a-f]{0,32}$' THEN
        RAISE EXCEPTION 'aws_s3: internal error: bad program request';
    END IF;
    -- fixed at install time by "pgferry extension install"; shell-safe characters only
    RETURN rtrim('exec @PROGRAM@ ' || p_mode || ' ' || p_id);
END $$;

CREATE FUNCTION aws_s3._new_id() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
$$;

-- The spool directory, inside the data directory: private to the server's
-- OS user (PostgreSQL insists on that), and the program's working directory.
CREATE FUNCTION aws_s3._spool(p_id text, p_ext text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT current_setting('data_directory') || '/pgferry_aws_s3/' || p_id || '.' || p_ext
$$;

CREATE FUNCTION aws_s3._write_request(p_id text, p_request jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_stat_file(current_setting('data_directory') || '/pgferry_aws_s3', true) IS NULL THEN
        EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', aws_s3._command('prepare', ''));
    END IF;
    -- COPY takes no parameters, so the request travels in a transaction-local
    -- setting: the statement text names the setting, never the secret.
    PERFORM set_config('aws_s3.request',
                       encode(convert_to(p_request::text, 'UTF8'), 'hex'), true);
    EXECUTE format('COPY (SELECT pg_catalog.current_setting(%L)) TO %L',
                   'aws_s3.request', aws_s3._spool(p_id, 'req'));
    PERFORM set_config('aws_s3.request', '', true);
END $$;

CREATE FUNCTION aws_s3._read_status(p_id text) RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.pg_read_file(aws_s3._spool(p_id, 'status'), 0, 1048576, true)::jsonb
$$;

-- Raise the program's one-line error (the same text the client import prints).
CREATE FUNCTION aws_s3._raise_status(p_status jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_status ? 'error' THEN
        RAISE EXCEPTION USING MESSAGE = p_status->>'error',
            ERRCODE = coalesce(p_status->>'sqlstate', '58030');
    END IF;
END $$;

-- Parse COPY options with pgferry's parser (the client import's): a JSON
-- list [[name, value], ...] that the callers below re-render from their own
-- whitelists, so only known names, quoted values and checked words reach a
-- statement.
CREATE FUNCTION aws_s3._parse_options(p_options text, p_direction text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id text := aws_s3._new_id();
    v_status jsonb;
BEGIN
    IF coalesce(p_options, '') ~ '^\s*$' THEN
        RETURN '[]';
    END IF;
    PERFORM aws_s3._write_request(v_id, jsonb_build_object(
        'options', p_options, 'direction', p_direction));
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', aws_s3._command('options', v_id));
    v_status := aws_s3._read_status(v_id);
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'aws_s3: the pgferry program left no result; see the server log';
    END IF;
    PERFORM aws_s3._raise_status(v_status);
    RETURN coalesce(v_status->'options', '[]');
END $$;

-- The options as COPY's parenthesised list (exports). The whitelists here
-- and in _fdw_options follow pgferry.sink.options (tests/extension/
-- test_option_whitelist.py checks that they match).
CREATE FUNCTION aws_s3._copy_options(p_list jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_opt jsonb;
    v_name text;
    v_val jsonb;
    v_parts text[] := '{}';
BEGIN
    FOR v_opt IN SELECT * FROM jsonb_array_elements(p_list)
    LOOP
        v_name := v_opt->>0;
        v_val := v_opt->1;
        IF v_name IN ('delimiter', 'null', 'default', 'quote', 'escape', 'encoding')
           AND jsonb_typeof(v_val) = 'string' THEN
            v_parts := v_parts || (upper(v_name) || ' ' || quote_literal(v_val #>> '{}'));
        ELSIF v_name IN ('header', 'freeze') AND v_val #>> '{}' IN ('true', 'false', 'match') THEN
            v_parts := v_parts || (upper(v_name) || ' ' || (v_val #>> '{}'));
        ELSIF (v_name = 'format' AND v_val #>> '{}' IN ('text', 'csv', 'binary'))
           OR (v_name = 'on_error' AND v_val #>> '{}' IN ('stop', 'ignore'))
           OR (v_name = 'log_verbosity' AND v_val #>> '{}' IN ('default', 'verbose', 'silent')) THEN
            v_parts := v_parts || (upper(v_name) || ' ' || (v_val #>> '{}'));
        ELSIF v_name = 'reject_limit' AND jsonb_typeof(v_val) = 'number' THEN
            v_parts := v_parts || (upper(v_name) || ' ' || ((v_val #>> '{}')::bigint)::text);
        ELSIF v_name IN ('force_not_null', 'force_null', 'force_quote')
           AND jsonb_typeof(v_val) = 'array' THEN
            IF v_val = '["*"]' THEN
                v_parts := v_parts || (upper(v_name) || ' *');
            ELSE
                v_parts := v_parts || (upper(v_name) || ' (' || (
                    SELECT string_agg(quote_ident(c), ', ' ORDER BY n)
                    FROM jsonb_array_elements_text(v_val) WITH ORDINALITY AS x(c, n)) || ')');
            END IF;
        ELSE
            RAISE EXCEPTION 'unsupported COPY option % in aws_s3 call', quote_literal(v_name)
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF cardinality(v_parts) = 0 THEN
        RETURN '';
    END IF;
    RETURN '(' || array_to_string(v_parts, ', ') || ')';
END $$;

CREATE FUNCTION aws_s3._options(p_options text, p_direction text) RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT aws_s3._copy_options(aws_s3._parse_options(p_options, p_direction))
$$;

-- The import's COPY options as file_fdw options: table options (a list for
-- OPTIONS (...)) and the columns for the force_not_null / force_null column
-- options, each from the whitelist, values as literals.
CREATE FUNCTION aws_s3._fdw_options(
    p_list jsonb, p_columns text[],
    OUT o_table text, OUT o_force_not_null text[], OUT o_force_null text[], OUT o_binary boolean)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_opt jsonb;
    v_name text;
    v_val jsonb;
    v_cols text[];
    v_parts text[] := '{}';
BEGIN
    o_force_not_null := '{}';
    o_force_null := '{}';
    o_binary := false;
    FOR v_opt IN SELECT * FROM jsonb_array_elements(p_list) LOOP
        v_name := v_opt->>0;
        v_val := v_opt->1;
        IF (v_name IN ('delimiter', 'null', 'quote', 'escape', 'encoding')
            AND jsonb_typeof(v_val) = 'string')
           OR (v_name = 'header' AND v_val #>> '{}' IN ('true', 'false', 'match'))
           OR (v_name = 'format' AND v_val #>> '{}' IN ('text', 'csv', 'binary'))
           OR (v_name = 'on_error' AND v_val #>> '{}' IN ('stop', 'ignore'))
           OR (v_name = 'log_verbosity' AND v_val #>> '{}' IN ('default', 'verbose', 'silent'))
           OR (v_name = 'reject_limit' AND jsonb_typeof(v_val) = 'number') THEN
            v_parts := v_parts || format('%I %L', v_name, v_val #>> '{}');
            o_binary := o_binary OR (v_name = 'format' AND v_val #>> '{}' = 'binary');
        ELSIF v_name = 'freeze' AND v_val #>> '{}' IN ('true', 'false') THEN
            NULL;  -- a hint for loads into a new table; rows go through INSERT here
        ELSIF v_name IN ('force_not_null', 'force_null') AND jsonb_typeof(v_val) = 'array' THEN
            IF v_val = '["*"]' THEN
                v_cols := p_columns;
            ELSE
                v_cols := ARRAY(SELECT jsonb_array_elements_text(v_val));
                SELECT c INTO v_name FROM unnest(v_cols) AS c WHERE c <> ALL (p_columns) LIMIT 1;
                IF FOUND THEN
                    RAISE EXCEPTION '% column "%" not referenced by COPY',
                        upper(v_opt->>0), v_name USING ERRCODE = '42P10';
                END IF;
                v_name := v_opt->>0;
            END IF;
            IF v_name = 'force_not_null' THEN
                o_force_not_null := o_force_not_null || v_cols;
            ELSE
                o_force_null := o_force_null || v_cols;
            END IF;
        ELSE
            RAISE EXCEPTION 'unsupported COPY option % in aws_s3 call', quote_literal(v_name)
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    o_table := array_to_string(v_parts, ', ');
END $$;

-- Strict checks on what names the object, so that no value can steer the
-- server's requests (and its ambient credentials) to another host: the
-- endpoint comes only from the server's own environment and AWS config.
CREATE FUNCTION aws_s3._check_object(p_bucket text, p_key text, p_region text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_bucket IS NULL OR p_bucket !~ '^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$' THEN
        RAISE EXCEPTION 'invalid S3 bucket name %', quote_literal(coalesce(p_bucket, 'NULL'))
            USING ERRCODE = '22023', HINT = 'bucket names use letters, digits, ".", "-" and "_"';
    END IF;
    IF p_key IS NULL OR p_key = '' OR octet_length(p_key) > 1024 THEN
        RAISE EXCEPTION 'invalid S3 file_path %', quote_literal(coalesce(p_key, 'NULL'))
            USING ERRCODE = '22023', HINT = 'give the object key, 1 to 1024 bytes';
    END IF;
    IF coalesce(p_region, '') <> '' AND p_region !~ '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$' THEN
        RAISE EXCEPTION 'invalid AWS region %', quote_literal(p_region)
            USING ERRCODE = '22023', HINT = 'e.g. us-east-1';
    END IF;
END $$;

-- Types whose input functions are built in and search_path independent: a
-- foreign table column of such a type parses exactly as the target would.
-- Others are read as text and cast by the caller in its INSERT, so the
-- definer never creates a column of a caller-defined type.
CREATE FUNCTION aws_s3._builtin_type(p_type oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype = 'b'
                            AND t.typname !~ '^_?reg'
                     FROM pg_catalog.pg_type t WHERE t.oid = p_type), false)
$$;

-- Internal steps that act with the owner's rights run only when called from
-- the import itself. PL/pgSQL's call stack (PG_CONTEXT) is written by the
-- server, one line per frame, innermost first: line 1 is this function,
-- line 2 the step's PERFORM of it, line 3 the internal step, line 4 the
-- step's caller (checked against p_caller). A frame's line starts
-- with text the server chooses ("PL/pgSQL function <signature>", "SQL
-- statement ..."), and aws_s3._import pins its search_path, so its signature
-- is always printed schema-qualified: no caller-made function or statement
-- can put that text at the start of line 4. (Identifiers with line breaks can
-- add lines further down, which is why only line 4 is looked at.) Call this
-- only as "PERFORM aws_s3._assert_caller('<literal>', ...)", literals only, on
-- one line (that statement's text is line 2).
CREATE FUNCTION aws_s3._assert_caller(
    p_step text, p_caller text, p_public text DEFAULT 'aws_s3.table_import_from_s3')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stack text;
BEGIN
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    IF coalesce(split_part(v_stack, E'\n', 4), '') !~ p_caller THEN
        RAISE EXCEPTION 'aws_s3: % is an internal step of %', p_step, p_public
            USING ERRCODE = '42501', HINT = 'call ' || p_public;
    END IF;
END $$;

-- Keys travel in an HTTP header: printable ASCII only (0x21-0x7E), so a line
-- break can never make the HTTP client fail with the header in its message.
-- The message names the field, never its value.
CREATE FUNCTION aws_s3._check_credentials(
    p_access_key text, p_secret_key text, p_session_token text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(p_access_key, '') !~ '^[!-~]*$' OR octet_length(p_access_key) > 128 THEN
        RAISE EXCEPTION 'invalid AWS access key: use 1 to 128 printable ASCII characters'
            USING ERRCODE = '22023', HINT = 'no spaces or line breaks; check how it was copied';
    END IF;
    IF coalesce(p_secret_key, '') !~ '^[!-~]*$' OR octet_length(p_secret_key) > 128 THEN
        RAISE EXCEPTION 'invalid AWS secret key: use 1 to 128 printable ASCII characters'
            USING ERRCODE = '22023', HINT = 'no spaces or line breaks; check how it was copied';
    END IF;
    IF coalesce(p_session_token, '') !~ '^[!-~]*$' OR octet_length(p_session_token) > 8192 THEN
        RAISE EXCEPTION 'invalid AWS session token: use printable ASCII characters (at most 8192)'
            USING ERRCODE = '22023', HINT = 'no spaces or line breaks; check how it was copied';
    END IF;
END $$;

REVOKE ALL ON FUNCTION aws_s3._command(text, text), aws_s3._new_id(), aws_s3._spool(text, text),
    aws_s3._assert_caller(text, text, text), aws_s3._check_credentials(text, text, text),
    aws_s3._write_request(text, jsonb), aws_s3._read_status(text), aws_s3._raise_status(jsonb),
    aws_s3._parse_options(text, text), aws_s3._options(text, text), aws_s3._copy_options(jsonb),
    aws_s3._fdw_options(jsonb, text[]),
    aws_s3._check_object(text, text, text),
    aws_s3._builtin_type(oid) FROM PUBLIC;

-- Re-raise an error with log_min_error_statement off, so the server log does
-- not repeat the caller's statement, which may carry keys as literals.
CREATE FUNCTION aws_s3._reraise(p_state text, p_message text, p_detail text, p_hint text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET log_min_error_statement = 'panic' AS $$
BEGIN
    IF p_detail IS NOT NULL AND p_hint IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = p_detail, HINT = p_hint;
    ELSIF p_detail IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = p_detail;
    ELSIF p_hint IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, HINT = p_hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message;
END $$;

-- (the import and export functions follow: pgferry extension install
-- appends aws_s3_import.sql and aws_s3_export.sql to this file)
