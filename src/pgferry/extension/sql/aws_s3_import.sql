
-- ---------------------------------------------------------------------------
-- Import: aws_s3.table_import_from_s3

-- The one step that needs the definer's rights: COPY ... FROM PROGRAM into a
-- staging table that this function creates itself, in the caller's session,
-- with only built-in column types (or text), no defaults, constraints,
-- indexes or triggers: no user code can run while it holds those rights.
-- It then hands the table to the caller, who inserts from it.
CREATE FUNCTION aws_s3._fetch_stage(
    p_columns text[], p_types oid[], p_typmods integer[], p_owner name, p_options text,
    p_bucket text, p_key text, p_region text,
    p_access_key text, p_secret_key text, p_session_token text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stage text := 'pgferry_stage_' || aws_s3._new_id();
    v_id text := aws_s3._new_id();
    v_opts text;
    v_defs text;
    v_rows bigint;
    v_status jsonb;
BEGIN
    PERFORM aws_s3._check_object(p_bucket, p_key, p_region);
    IF NOT pg_has_role(session_user, p_owner, 'MEMBER')
       OR coalesce(cardinality(p_columns), 0) = 0
       OR cardinality(p_columns) <> cardinality(p_types)
       OR cardinality(p_columns) <> cardinality(p_typmods) THEN
        RAISE EXCEPTION 'aws_s3: internal error: bad staging request';
    END IF;
    v_opts := aws_s3._options(p_options, 'import');
    SELECT string_agg(format('%I %s', c,
               CASE WHEN aws_s3._builtin_type(t) THEN format_type(t, m) ELSE 'text' END),
               ', ' ORDER BY n)
      INTO v_defs
      FROM unnest(p_columns, p_types, p_typmods) WITH ORDINALITY AS x(c, t, m, n);
    IF v_opts ~ '^\(FORMAT binary[,)]' AND NOT (
           SELECT bool_and(aws_s3._builtin_type(t)) FROM unnest(p_types) AS t) THEN
        RAISE EXCEPTION 'format binary needs built-in column types in aws_s3 imports'
            USING ERRCODE = '0A000', HINT = 'use format text or csv for this table';
    END IF;
    EXECUTE format('CREATE TEMP TABLE %I (%s)', v_stage, v_defs);
    PERFORM aws_s3._write_request(v_id, jsonb_build_object(
        'bucket', p_bucket, 'key', p_key, 'region', nullif(p_region, ''),
        'access_key', nullif(p_access_key, ''), 'secret_key', nullif(p_secret_key, ''),
        'session_token', nullif(p_session_token, '')));
    BEGIN
        EXECUTE format('COPY pg_temp.%I FROM PROGRAM %L %s',
                       v_stage, aws_s3._command('import', v_id), v_opts);
        GET DIAGNOSTICS v_rows = ROW_COUNT;
    EXCEPTION WHEN OTHERS THEN
        -- a failed fetch also makes COPY fail (program failed, or a cut
        -- last row): the program's own message says why, so it wins
        PERFORM aws_s3._raise_status(aws_s3._read_status(v_id));
        RAISE;
    END;
    v_status := aws_s3._read_status(v_id);
    IF v_status IS NULL OR NOT v_status ? 'size' THEN
        RAISE EXCEPTION 'aws_s3: the pgferry program left no result; see the server log';
    END IF;
    EXECUTE format('ALTER TABLE pg_temp.%I OWNER TO %I', v_stage, p_owner);
    RETURN jsonb_build_object('stage', v_stage, 'rows', v_rows, 'size', v_status->'size');
END $$;

-- The caller's side: resolve and check names as COPY would, stage the rows,
-- insert them with the caller's rights and search_path.
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
    v_res jsonb;
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
    -- staged as text: cast by the caller (domain checks, enum and composite
    -- input run with the caller's rights); the typmod is applied by the
    -- INSERT's assignment, which errors on overflow as COPY would
    SELECT array_agg(CASE WHEN aws_s3._builtin_type(t) THEN quote_ident(c)
                          ELSE format('CAST(%I AS %s)', c, format_type(t, NULL)) END ORDER BY n)
      INTO v_select FROM unnest(v_names, v_types) WITH ORDINALITY AS x(c, t, n);

    v_res := aws_s3._fetch_stage(v_names, v_types, v_mods, current_user, p_options,
                                 p_bucket, p_key, p_region,
                                 p_access_key, p_secret_key, p_session_token);
    PERFORM set_config('search_path', p_path, true);
    EXECUTE format('INSERT INTO %I.%I (%s) SELECT %s FROM pg_temp.%I',
                   v_nsp, v_relname,
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_names) AS c),
                   array_to_string(v_select, ', '), v_res->>'stage');
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    EXECUTE format('DROP TABLE pg_temp.%I', v_res->>'stage');
    RETURN format('%s rows imported into relation "%s" from file %s of %s bytes',
                  v_rows, p_table, p_key, v_res->>'size');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
        v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
        v_context = PG_EXCEPTION_CONTEXT;
    -- say where in the file a rejected row is (COPY's context names the
    -- staging table, meaningless to the caller)
    v_piece := substring(v_context from 'COPY pgferry_stage_[0-9a-f]+, (line [0-9]+[^\n]*)');
    IF v_piece IS NOT NULL AND coalesce(v_detail, '') = '' THEN
        v_detail := format('s3://%s/%s %s', p_bucket, p_key, v_piece);
    END IF;
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
