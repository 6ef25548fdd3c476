
-- ---------------------------------------------------------------------------
-- Import: aws_s3.table_import_from_s3

-- The steps that need the definer's rights, each callable only from
-- aws_s3._import (see aws_s3._assert_caller), which calls them inside its own
-- block: whatever they create is dropped by the import or rolled back with
-- it, so nothing of theirs can outlive a call, and nothing is left for a
-- clean-up that someone else's view could block.
--
-- _fetch_open creates the foreign table the caller's INSERT reads, in
-- aws_s3_private, owned by the extension owner: its program is fixed text and
-- a random id; its columns are the target's names with built-in types
-- (others as text, cast by the caller); its options come from the whitelist.
-- Only p_role, which must be allowed to INSERT into every column of p_rel,
-- may read it. The request (bucket, key, keys) stays in memory, in a
-- transaction-local setting; _gate writes it to the spool only once the
-- program is running and waiting for it. Returns the id; the table is
-- aws_s3_private.pgferry_fetch_<id>.
CREATE FUNCTION aws_s3._fetch_open(
    p_rel regclass, p_columns text[], p_types oid[], p_typmods integer[], p_role name,
    p_options text, p_bucket text, p_key text, p_region text,
    p_access_key text, p_secret_key text, p_session_token text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id text := aws_s3._new_id();
    v_opts record;
    v_defs text;
BEGIN
    PERFORM aws_s3._assert_caller('_fetch_open', '^PL/pgSQL function aws_s3\._import\(');
    PERFORM aws_s3._check_object(p_bucket, p_key, p_region);
    PERFORM aws_s3._check_credentials(p_access_key, p_secret_key, p_session_token);
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role)
       OR NOT pg_has_role(session_user, p_role, 'MEMBER')
       OR coalesce(cardinality(p_columns), 0) = 0
       OR cardinality(p_columns) <> cardinality(p_types)
       OR cardinality(p_columns) <> cardinality(p_typmods) THEN
        RAISE EXCEPTION 'aws_s3: internal error: bad fetch request';
    END IF;
    -- only on behalf of an INSERT the role may make (its INSERT checks again)
    IF NOT (SELECT bool_and(has_column_privilege(p_role, p_rel, c, 'INSERT'))
            FROM unnest(p_columns) AS c) THEN
        RAISE EXCEPTION 'permission denied for table %',
            (SELECT relname FROM pg_class WHERE oid = p_rel) USING ERRCODE = '42501';
    END IF;
    v_opts := aws_s3._fdw_options(aws_s3._parse_options(p_options, 'import'), p_columns);
    IF v_opts.o_binary AND NOT (
           SELECT bool_and(aws_s3._builtin_type(t)) FROM unnest(p_types) AS t) THEN
        RAISE EXCEPTION 'format binary needs built-in column types in aws_s3 imports'
            USING ERRCODE = '0A000', HINT = 'use format text or csv for this table';
    END IF;
    SELECT string_agg(format('%I %s%s', c,
               CASE WHEN aws_s3._builtin_type(t) THEN format_type(t, m) ELSE 'text' END,
               CASE WHEN c = ANY (v_opts.o_force_not_null) AND c = ANY (v_opts.o_force_null)
                    THEN ' OPTIONS (force_not_null ''true'', force_null ''true'')'
                    WHEN c = ANY (v_opts.o_force_not_null) THEN ' OPTIONS (force_not_null ''true'')'
                    WHEN c = ANY (v_opts.o_force_null) THEN ' OPTIONS (force_null ''true'')'
                    ELSE '' END),
               ', ' ORDER BY n)
      INTO v_defs
      FROM unnest(p_columns, p_types, p_typmods) WITH ORDINALITY AS x(c, t, m, n);
    -- fails here, before any request exists, in a read-only transaction, on a
    -- hot standby, or when file_fdw refuses an option
    EXECUTE format('CREATE FOREIGN TABLE aws_s3_private.%I (%s) SERVER aws_s3_fetch '
                   'OPTIONS (program %L%s)',
                   'pgferry_fetch_' || v_id, v_defs, aws_s3._command('import', v_id),
                   CASE WHEN v_opts.o_table = '' THEN '' ELSE ', ' || v_opts.o_table END);
    EXECUTE format('GRANT SELECT ON aws_s3_private.%I TO %I', 'pgferry_fetch_' || v_id, p_role);
    PERFORM set_config('aws_s3.pending_' || v_id,
        encode(convert_to(jsonb_build_object(
            'bucket', p_bucket, 'key', p_key, 'region', nullif(p_region, ''),
            'access_key', nullif(p_access_key, ''), 'secret_key', nullif(p_secret_key, ''),
            'session_token', nullif(p_session_token, ''),
            -- the program checks the first bytes as the client import does
            -- (refuses a zip, drops a UTF-8 BOM): it needs the format and
            -- the encoding COPY reads the bytes in
            'options', p_options,
            'client_encoding', current_setting('client_encoding'))::text, 'UTF8'), 'hex'), true);
    RETURN v_id;
END $$;

-- The gate, evaluated by the caller's INSERT as a one-time filter: the
-- executor has started the program (file_fdw starts it when the scan is set
-- up), which announces itself with <id>.wait; only then is the request
-- written, and the program deletes it as soon as it has read it, or when its
-- pipe closes because the statement failed first. Once only: the pending
-- request is cleared, and the program runs once per id (<id>.used), so a
-- second scan of the table (say, from a trigger) gets nothing.
CREATE FUNCTION aws_s3._gate(p_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_setting text := 'aws_s3.pending_' || p_id;
    v_deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
    PERFORM aws_s3._assert_caller('_gate', '^SQL statement "INSERT INTO ');
    IF p_id IS NULL OR p_id !~ '^[0-9a-f]{32}$'
       OR coalesce(current_setting(v_setting, true), '') = '' THEN
        RAISE EXCEPTION 'aws_s3: internal error: no pending fetch';
    END IF;
    WHILE pg_stat_file(aws_s3._spool(p_id, 'wait'), true) IS NULL LOOP
        IF clock_timestamp() > v_deadline THEN
            RAISE EXCEPTION 'aws_s3: the pgferry program did not start; see the server log'
                USING ERRCODE = '58030';
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    EXECUTE format('COPY (SELECT pg_catalog.current_setting(%L)) TO %L',
                   v_setting, aws_s3._spool(p_id, 'req'));
    PERFORM set_config(v_setting, '', true);
    RETURN true;
END $$;

-- Drop the caller's foreign table (if it is still there: an error has
-- rolled it back) and return the program's status: {"size": ...} or
-- {"error": ...}, NULL if the program left none.
CREATE FUNCTION aws_s3._fetch_close(p_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rel oid;
    v_status jsonb;
BEGIN
    PERFORM aws_s3._assert_caller('_fetch_close', '^PL/pgSQL function aws_s3\._import\(');
    IF p_id IS NULL OR p_id !~ '^[0-9a-f]{32}$' THEN
        RAISE EXCEPTION 'aws_s3: internal error: bad fetch id';
    END IF;
    SELECT c.oid INTO v_rel FROM pg_class c
     WHERE c.relnamespace = 'aws_s3_private'::regnamespace AND c.relkind = 'f'
       AND c.relname = 'pgferry_fetch_' || p_id;
    IF v_rel IS NOT NULL THEN
        EXECUTE format('DROP FOREIGN TABLE aws_s3_private.%I', 'pgferry_fetch_' || p_id);
    END IF;
    PERFORM set_config('aws_s3.pending_' || p_id, '', true);
    v_status := aws_s3._read_status(p_id);
    -- the program is gone by now (COPY waits for it); if it was killed
    -- between the gate's write and its read, blank what it left
    IF (pg_stat_file(aws_s3._spool(p_id, 'req'), true)).size > 0 THEN
        EXECUTE format('COPY (SELECT WHERE false) TO %L', aws_s3._spool(p_id, 'req'));
    END IF;
    RETURN v_status;
END $$;

-- The caller's side: resolve and check names as COPY would, then insert
-- from the foreign table with the caller's rights and search_path.
CREATE FUNCTION aws_s3._import(
    p_path text, p_table text, p_column_list text, p_options text,
    p_bucket text, p_key text, p_region text,
    p_access_key text, p_secret_key text, p_session_token text)
RETURNS text LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_parts text[];
    v_name text;
    v_rel regclass;
    v_nsp name;
    v_relname name;
    v_piece text;
    v_ident text[];
    v_att record;
    v_names text[] := '{}';
    v_types oid[] := '{}';
    v_mods integer[] := '{}';
    v_select text[] := '{}';
    v_id text;
    v_status jsonb;
    v_rows bigint;
    v_state text;
    v_msg text;
    v_detail text;
    v_hint text;
    v_context text;
BEGIN
    v_parts := parse_ident(p_table);
    v_name := (SELECT string_agg(quote_ident(p), '.' ORDER BY n)
               FROM unnest(v_parts) WITH ORDINALITY AS x(p, n));
    PERFORM set_config('search_path', p_path, true);
    v_rel := pg_catalog.to_regclass(v_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'relation "%" does not exist', array_to_string(v_parts, '.')
            USING ERRCODE = '42P01';
    END IF;
    SELECT n.nspname, c.relname INTO v_nsp, v_relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = v_rel;

    IF coalesce(p_column_list, '') ~ '^\s*$' THEN
        FOR v_att IN SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
                     WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attgenerated = '' ORDER BY a.attnum LOOP
            v_names := v_names || v_att.attname::text;
            v_types := v_types || v_att.atttypid;
            v_mods := v_mods || v_att.atttypmod;
        END LOOP;
    ELSE
        IF p_column_list !~ '^\s*(?:"(?:[^"]|"")*"|[^,"])+(?:,(?:"(?:[^"]|"")*"|[^,"])+)*\s*$' THEN
            RAISE EXCEPTION 'invalid column list %', quote_literal(p_column_list)
                USING ERRCODE = '42601', HINT = 'write it as in COPY: a,b,"Mixed Case"';
        END IF;
        FOR v_piece IN SELECT m[1] FROM regexp_matches(p_column_list,
                                       '((?:"(?:[^"]|"")*"|[^,"])+)', 'g') AS m LOOP
            v_ident := parse_ident(btrim(v_piece));
            IF cardinality(v_ident) <> 1 THEN
                RAISE EXCEPTION 'invalid column name %', quote_literal(btrim(v_piece))
                    USING ERRCODE = '42601';
            END IF;
            SELECT a.attname, a.atttypid, a.atttypmod INTO v_att FROM pg_attribute a
             WHERE a.attrelid = v_rel AND a.attname = v_ident[1] AND a.attnum > 0
               AND NOT a.attisdropped;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'column "%" of relation "%" does not exist', v_ident[1], v_relname
                    USING ERRCODE = '42703';
            END IF;
            IF v_ident[1] = ANY (v_names) THEN
                RAISE EXCEPTION 'column "%" specified more than once', v_ident[1]
                    USING ERRCODE = '42701';
            END IF;
            v_names := v_names || v_att.attname::text;
            v_types := v_types || v_att.atttypid;
            v_mods := v_mods || v_att.atttypmod;
        END LOOP;
    END IF;
    IF cardinality(v_names) = 0 THEN
        RAISE EXCEPTION 'relation "%" has no columns to import into', v_relname
            USING ERRCODE = '42P10';
    END IF;
    -- read as text: cast by the caller (domain checks, enum and composite
    -- input run with the caller's rights); the typmod is applied by the
    -- INSERT's assignment, which errors on overflow as COPY would
    SELECT array_agg(CASE WHEN aws_s3._builtin_type(t) THEN quote_ident(c)
                          ELSE format('CAST(%I AS %s)', c, format_type(t, NULL)) END ORDER BY n)
      INTO v_select FROM unnest(v_names, v_types) WITH ORDINALITY AS x(c, t, n);

    v_id := aws_s3._fetch_open(v_rel, v_names, v_types, v_mods, current_user, p_options,
                               p_bucket, p_key, p_region,
                               p_access_key, p_secret_key, p_session_token);
    -- the rows stream from the program into the table, as the caller
    PERFORM set_config('search_path', p_path, true);
    EXECUTE format('INSERT INTO %I.%I (%s) SELECT %s FROM aws_s3_private.%I '
                   'WHERE (SELECT aws_s3._gate(%L))',
                   v_nsp, v_relname,
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_names) AS c),
                   array_to_string(v_select, ', '), 'pgferry_fetch_' || v_id, v_id);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_status := aws_s3._fetch_close(v_id);
    PERFORM aws_s3._raise_status(v_status);
    IF v_status IS NULL OR NOT v_status ? 'size' THEN
        RAISE EXCEPTION 'aws_s3: the pgferry program left no result; see the server log';
    END IF;
    RETURN format('%s rows imported into relation "%s" from file %s of %s bytes',
                  v_rows, p_table, p_key, v_status->>'size');
-- OTHERS leaves out query_canceled: a statement_timeout or pg_cancel_backend
-- is caught too, so that it is re-raised (unchanged) without the statement
EXCEPTION WHEN OTHERS OR query_canceled THEN
    -- a cancel that lands while this handler runs (say, a row was rejected
    -- just as statement_timeout fired) is caught here in turn
    BEGIN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        -- a failed fetch also makes the scan fail (program failed, or a cut
        -- last row): the program's own message says why, so it wins
        IF v_id IS NOT NULL THEN
            v_status := aws_s3._fetch_close(v_id);
            IF coalesce(v_status ? 'error', false) THEN
                v_state := coalesce(v_status->>'sqlstate', '58030');
                v_msg := v_status->>'error';
                v_detail := NULL;
                v_hint := NULL;
            END IF;
        END IF;
        -- say where in the file a rejected row is (COPY's context names the
        -- foreign table, meaningless to the caller)
        v_piece := substring(v_context from 'COPY pgferry_fetch_[0-9a-f]+, (line [0-9]+[^\n]*)');
        IF v_piece IS NOT NULL AND coalesce(v_detail, '') = ''
           AND NOT coalesce(v_status ? 'error', false) THEN
            v_detail := format('s3://%s/%s %s', p_bucket, p_key, v_piece);
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        v_detail := NULL;
        v_hint := NULL;
    END;
    PERFORM aws_s3._reraise(v_state, v_msg, nullif(v_detail, ''), nullif(v_hint, ''));
    RETURN NULL;
END $$;

-- The four RDS signatures. These thin wrappers pin no search_path on purpose:
-- they must pass the caller's search_path on (to resolve the table name as
-- COPY would), and every name in them is schema-qualified.
CREATE FUNCTION aws_s3.table_import_from_s3(
    table_name text, column_list text, options text, s3_info aws_commons._s3_uri_1)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT aws_s3._import(pg_catalog.current_setting('search_path'), table_name, column_list,
        options, (s3_info).bucket, (s3_info).file_path, (s3_info).region, NULL, NULL, NULL)
$$;

CREATE FUNCTION aws_s3.table_import_from_s3(
    table_name text, column_list text, options text, s3_info aws_commons._s3_uri_1,
    credentials aws_commons._aws_credentials_1)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT aws_s3._import(pg_catalog.current_setting('search_path'), table_name, column_list,
        options, (s3_info).bucket, (s3_info).file_path, (s3_info).region,
        (credentials).access_key, (credentials).secret_key, (credentials).session_token)
$$;

CREATE FUNCTION aws_s3.table_import_from_s3(
    table_name text, column_list text, options text, bucket text, file_path text, region text)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT aws_s3._import(pg_catalog.current_setting('search_path'), table_name, column_list,
        options, bucket, file_path, region, NULL, NULL, NULL)
$$;

CREATE FUNCTION aws_s3.table_import_from_s3(
    table_name text, column_list text, options text, bucket text, file_path text, region text,
    access_key text, secret_key text, session_token text)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT aws_s3._import(pg_catalog.current_setting('search_path'), table_name, column_list,
        options, bucket, file_path, region, access_key, secret_key, session_token)
$$;
