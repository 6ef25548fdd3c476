"""A realistic database, generated server-side (also used by the benchmark).

Several schemas (one needing quotes), foreign keys, a partitioned table,
large objects, owned and free-standing sequences, identity and generated
columns, a table without a primary key, views and a materialized view, an
extension, comments, a grant, a trigger.  `big_rows` sets the size of the
largest table (app.events, integer key); the others scale from it.
"""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMA = '''
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA app;
CREATE SCHEMA sales;
CREATE SCHEMA "Mixed Case";
CREATE TYPE app.status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN app.positive AS numeric CHECK (VALUE >= 0);
CREATE SEQUENCE app.invoice_no START 1000;
CREATE TABLE app.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email citext UNIQUE NOT NULL,
    name text,
    created timestamptz NOT NULL,
    tags text[],
    meta jsonb
);
COMMENT ON TABLE app.users IS 'people who order';
COMMENT ON COLUMN app.users.email IS 'unique, case-insensitive';
CREATE TABLE app.orders (
    id serial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES app.users,
    status app.status NOT NULL DEFAULT 'new',
    total app.positive NOT NULL,
    total_with_tax numeric GENERATED ALWAYS AS (round(total * 1.2, 2)) STORED,
    placed_at timestamp NOT NULL,
    note text
);
CREATE INDEX orders_user_idx ON app.orders (user_id, placed_at);
CREATE TABLE app.events (
    id bigint PRIMARY KEY,
    order_id int REFERENCES app.orders,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    amount double precision,
    payload bytea
);
CREATE INDEX events_kind_idx ON app.events (kind);
CREATE TABLE sales.log (line text, at timestamptz, level int);
CREATE TABLE sales.wide (k int, pad text);
CREATE TABLE sales.measurements (
    city int NOT NULL, day date NOT NULL, temp real, PRIMARY KEY (city, day)
) PARTITION BY RANGE (day);
CREATE TABLE sales.m2024 PARTITION OF sales.measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE sales.m2025 PARTITION OF sales.measurements
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.mdefault PARTITION OF sales.measurements DEFAULT;
CREATE INDEX measurements_temp_idx ON sales.measurements (temp);
CREATE TABLE "Mixed Case"."Odd ""Table""" ("Col A" int, "select" text);
CREATE VIEW app.user_orders AS
    SELECT u.id, u.email, count(o.id) AS orders FROM app.users u
    LEFT JOIN app.orders o ON o.user_id = u.id GROUP BY u.id, u.email;
CREATE MATERIALIZED VIEW sales.daily AS
    SELECT day, count(*) AS n, avg(temp) AS temp FROM sales.measurements GROUP BY day;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.note := coalesce(NEW.note, 'touched'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON app.orders
    FOR EACH ROW EXECUTE FUNCTION app.touch();
'''

DATA = '''
INSERT INTO app.users (email, name, created, tags, meta)
    SELECT 'user' || g || '@example.com', 'User ' || g,
           '2024-01-01'::timestamptz + g * interval '1 minute',
           ARRAY['t' || g % 7, 'x'], jsonb_build_object('n', g, 'odd', g % 2 = 1)
      FROM generate_series(1, {users}) g;
INSERT INTO app.orders (user_id, status, total, placed_at, note)
    SELECT 1 + g % {users}, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3]::app.status,
           (g % 1000) / 7.0, '2024-06-01'::timestamp + g * interval '1 second',
           CASE WHEN g % 5 = 0 THEN NULL ELSE E'line\\nbreak\\ttab ' || g END
      FROM generate_series(1, {orders}) g;
INSERT INTO app.events
    SELECT g, 1 + g % {orders}, 'kind' || g % 13, '2025-01-01'::timestamptz + g * interval '1 s',
           g / 3.0, CASE WHEN g % 10 = 0 THEN decode(md5(g::text), 'hex') END
      FROM generate_series(1, {big}) g;
INSERT INTO sales.log SELECT 'log line ' || g, now(), g % 5 FROM generate_series(1, {log}) g;
INSERT INTO sales.wide SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, {wide}) g;
INSERT INTO sales.measurements
    SELECT c, '2023-12-01'::date + d, (c * d) % 40 - 5
      FROM generate_series(1, 20) c, generate_series(0, {days}) d;
INSERT INTO "Mixed Case"."Odd ""Table""" VALUES (1, 'a'), (2, NULL), (3, E'\\\\back');
SELECT setval('app.invoice_no', 4242);
SELECT nextval('app.orders_id_seq');
SELECT lo_from_bytea(424242, 'small large object');
SELECT lo_from_bytea(0, convert_to(repeat('0123456789abcdef', 100000), 'UTF8'));
REFRESH MATERIALIZED VIEW sales.daily;
ANALYZE;
'''


def generate(url: str, big_rows: int = 1_000_000, reader_role: str | None = None) -> None:
    sizes = {
        "users": max(100, big_rows // 100),
        "orders": max(200, big_rows // 20),
        "big": big_rows,
        "log": max(100, big_rows // 5),
        "wide": max(100, big_rows // 8),
        "days": 500,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(DATA.format(**sizes))  # sizes are ints we made; the statements are ours
        if reader_role:
            grant(conn, reader_role)


def grant(conn: psycopg.Connection[Any], role: str) -> None:
    ident = psycopg.sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if not exists:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {}").format(ident))
    conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA app TO {}").format(ident))
    conn.execute(psycopg.sql.SQL("GRANT SELECT ON app.users TO {}").format(ident))
