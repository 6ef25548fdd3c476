
-- ---------------------------------------------------------------------------
-- Export: aws_s3.query_export_to_s3

-- COPY ... TO PROGRAM from a temp table of the caller's own session, which
-- the caller filled with its query under its own rights. Only a plain table
-- (no rules that could make it a view, no children) is accepted: reading it
-- runs no user code. Unlike the import, this cannot stream: COPY (query)
-- TO PROGRAM runs its query as whoever runs the COPY, which must be the
-- extension owner, while the query must run as the caller; and there is
-- no streaming sink for the caller to write into (file_fdw cannot write).
-- So the caller's rows are materialised first. The part size is the administrator's: read from the
-- configuration files (ALTER SYSTEM / postgresql.conf), not from a SET.
CREATE FUNCTION aws_s3._upload_stage(
    p_stage regclass, p_options text, p_bucket text, p_key text, p_region text, p_kms_key text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_relname name;
    v_id text := aws_s3._new_id();
    v_opts text;
    v_part text;
    v_rows bigint;
    v_status jsonb;
BEGIN
    PERFORM aws_s3._check_object(p_bucket, p_key, p_region);
    SELECT c.relname INTO v_relname FROM pg_class c
     WHERE c.oid = p_stage AND c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r'
       AND c.relpersistence = 't' AND NOT c.relhasrules AND NOT c.relhassubclass
       AND pg_has_role(session_user, c.relowner, 'MEMBER');
    IF v_relname IS NULL THEN
        RAISE EXCEPTION 'aws_s3: internal error: bad export staging table';
    END IF;
    -- (one line: see aws_s3._assert_caller)
    PERFORM aws_s3._assert_caller('_upload_stage', '^PL/pgSQL function aws_s3\._export\(', 'aws_s3.query_export_to_s3');
    -- (a {1,2048} bound would exceed the regex engine's repeat limit, 255)
    IF p_kms_key IS NOT NULL
       AND (p_kms_key !~ '^[A-Za-z0-9:/_.-]+$' OR octet_length(p_kms_key) > 2048) THEN
        RAISE EXCEPTION 'invalid kms_key %', quote_literal(p_kms_key) USING ERRCODE = '22023';
    END IF;
    v_opts := aws_s3._options(p_options, 'export');
    SELECT f.setting INTO v_part FROM pg_file_settings f
     WHERE f.name = 'aws_s3.export_part_size' AND f.error IS NULL
     ORDER BY f.seqno DESC LIMIT 1;
    PERFORM aws_s3._write_request(v_id, jsonb_build_object(
        'bucket', p_bucket, 'key', p_key, 'region', nullif(p_region, ''),
        'options', coalesce(p_options, ''), 'kms_key', nullif(p_kms_key, ''),
        'part_size', v_part));
    BEGIN
        EXECUTE format('COPY (SELECT * FROM ONLY pg_temp.%I) TO PROGRAM %L %s',
                       v_relname, aws_s3._command('export', v_id), v_opts);
        GET DIAGNOSTICS v_rows = ROW_COUNT;
    EXCEPTION WHEN OTHERS THEN
        PERFORM aws_s3._raise_status(aws_s3._read_status(v_id));
        RAISE;
    END;
    v_status := aws_s3._read_status(v_id);
    PERFORM aws_s3._raise_status(v_status);
    IF v_status IS NULL OR NOT v_status ? 'files' THEN
        RAISE EXCEPTION 'aws_s3: the pgferry program left no result; see the server log';
    END IF;
    RETURN jsonb_build_object('rows', v_rows, 'files', v_status->'files',
                              'bytes', v_status->'bytes');
END $$;

-- The caller's side: run the query with the caller's rights and search_path
-- into a temp table, then upload that.
CREATE FUNCTION aws_s3._export(
    p_path text, p_query text, p_bucket text, p_key text, p_region text,
    p_options text, p_kms_key text,
    OUT rows_uploaded bigint, OUT files_uploaded bigint, OUT bytes_uploaded bigint)
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stage text := 'pgferry_export_' || aws_s3._new_id();
    v_res jsonb;
    v_count integer;
    v_state text;
    v_msg text;
    v_detail text;
    v_hint text;
BEGIN
    PERFORM aws_s3._check_object(p_bucket, p_key, p_region);
    PERFORM set_config('search_path', p_path, true);
    BEGIN
        EXECUTE format('CREATE TEMP TABLE %I AS %s', v_stage, p_query);
    EXCEPTION WHEN duplicate_column THEN
        -- COPY (query) accepts "SELECT 1, 2"; a table needs distinct names
        EXECUTE format('SELECT pg_catalog.count(*) FROM pg_catalog.json_object_keys('
                       'pg_catalog.to_json((SELECT q FROM (%s) q LIMIT 1)))', p_query)
           INTO v_count;
        IF coalesce(v_count, 0) = 0 THEN
            RAISE;
        END IF;
        EXECUTE format('CREATE TEMP TABLE %I AS SELECT * FROM (%s) AS q(%s)', v_stage, p_query,
                       (SELECT pg_catalog.string_agg('c' || i, ', ')
                        FROM pg_catalog.generate_series(1, v_count) AS i));
    END;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_res := aws_s3._upload_stage(format('pg_temp.%I', v_stage)::regclass, p_options,
                                  p_bucket, p_key, p_region, p_kms_key);
    EXECUTE format('DROP TABLE pg_temp.%I', v_stage);
    rows_uploaded := (v_res->>'rows')::bigint;
    files_uploaded := (v_res->>'files')::bigint;
    bytes_uploaded := (v_res->>'bytes')::bigint;
-- OTHERS leaves out query_canceled: a statement_timeout or pg_cancel_backend
-- is caught too, so that it is re-raised (unchanged) without the statement
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
        v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM aws_s3._reraise(v_state, v_msg, nullif(v_detail, ''), nullif(v_hint, ''));
END $$;

-- The RDS signatures; unpinned thin wrappers for the same reason as the
-- import ones (the query runs with the caller's search_path).
CREATE FUNCTION aws_s3.query_export_to_s3(
    query text, s3_info aws_commons._s3_uri_1, options text DEFAULT NULL,
    kms_key text DEFAULT NULL)
RETURNS TABLE (rows_uploaded bigint, files_uploaded bigint, bytes_uploaded bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM aws_s3._export(pg_catalog.current_setting('search_path'), query,
        (s3_info).bucket, (s3_info).file_path, (s3_info).region, options, kms_key)
$$;

CREATE FUNCTION aws_s3.query_export_to_s3(
    query text, bucket text, file_path text, region text DEFAULT NULL,
    options text DEFAULT NULL, kms_key text DEFAULT NULL)
RETURNS TABLE (rows_uploaded bigint, files_uploaded bigint, bytes_uploaded bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM aws_s3._export(pg_catalog.current_setting('search_path'), query,
        bucket, file_path, region, options, kms_key)
$$;

-- Like RDS: nobody but the owner may call these until granted (the server's
-- ambient S3 identity is a privilege). The internal entry points need the
-- same grant, since the public functions run as the caller:
--   GRANT USAGE ON SCHEMA aws_s3 TO r;
--   GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_s3 TO r;
REVOKE ALL ON FUNCTION
    aws_s3._fetch_open(regclass, text[], oid[], integer[], name, text, text, text, text, text,
                       text, text),
    aws_s3._gate(text),
    aws_s3._fetch_close(text),
    aws_s3._import(text, text, text, text, text, text, text, text, text, text),
    aws_s3.table_import_from_s3(text, text, text, aws_commons._s3_uri_1),
    aws_s3.table_import_from_s3(text, text, text, aws_commons._s3_uri_1,
                                aws_commons._aws_credentials_1),
    aws_s3.table_import_from_s3(text, text, text, text, text, text),
    aws_s3.table_import_from_s3(text, text, text, text, text, text, text, text, text),
    aws_s3._upload_stage(regclass, text, text, text, text, text),
    aws_s3._export(text, text, text, text, text, text, text),
    aws_s3.query_export_to_s3(text, aws_commons._s3_uri_1, text, text),
    aws_s3.query_export_to_s3(text, text, text, text, text, text),
    aws_s3._reraise(text, text, text, text)
FROM PUBLIC;
