"""`--database-settings`: what belongs to the database itself rather than to
anything pg_dump restores without --create: its comment, its grants
(`GRANT CONNECT ON DATABASE`), and `ALTER DATABASE/ROLE ... SET`.

The source's statements name the source database, so they are rebuilt for
the target's name from the catalogs.  Settings go through set_config() and
`SET ... FROM CURRENT`, which store the value exactly as the source holds
it (list settings such as search_path included).  What the target refuses
(a role it lacks, a superuser-only setting) becomes a note.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

PRIVILEGES = {"CREATE", "TEMPORARY", "CONNECT"}
DB = "(SELECT oid FROM pg_database WHERE datname = current_database())"


def read(src: psycopg.Connection[Any]) -> dict[str, Any]:
    comment = src.execute(f"SELECT shobj_description({DB}, 'pg_database')").fetchone()
    settings = src.execute(
        "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s"
        f" LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = {DB}"
        " ORDER BY 1 NULLS FIRST"
    ).fetchall()
    acl = src.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,"
        " a.privilege_type, a.is_grantable"
        " FROM pg_database d, aclexplode(d.datacl) a"
        " WHERE d.oid = " + DB + " AND a.grantee <> d.datdba ORDER BY 1 NULLS FIRST, 2"
    ).fetchall()
    has_acl = src.execute(f"SELECT datacl IS NOT NULL FROM pg_database WHERE oid = {DB}")
    row = has_acl.fetchone()
    return {
        "comment": comment[0] if comment else None,
        "settings": [(r[0], list(r[1])) for r in settings],
        "acl": [(r[0], r[1], r[2]) for r in acl] if row and row[0] else None,
    }


def apply(tgt: psycopg.Connection[Any], found: dict[str, Any], *, acl: bool) -> list[str]:
    """Apply on `tgt` (autocommit); returns notes for what was refused."""
    name = tgt.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    db = sql.Identifier(str(name))
    notes: list[str] = []

    def run(what: str, *stmts: sql.Composed) -> None:
        try:
            with tgt.transaction():
                for s in stmts:
                    tgt.execute(s)
        except psycopg.Error as e:
            notes.append(f"database setting not carried: {what}: {e.diag.message_primary}")

    if found["comment"] is not None:
        run(
            "comment",
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(found["comment"])),
        )
    for role, config in found["settings"]:
        for item in config:
            key, _, value = item.partition("=")
            who = (
                sql.SQL("DATABASE {}").format(db)
                if role is None
                else sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), db)
            )
            run(
                f"{key} = {value}" + (f" for role {role}" if role else ""),
                sql.SQL("SELECT set_config({}, {}, true)").format(
                    sql.Literal(key), sql.Literal(value)
                ),
                sql.SQL("ALTER {} SET {} FROM CURRENT").format(who, sql.Identifier(key)),
            )
    if acl and found["acl"] is not None:
        stmts: list[sql.Composed] = [sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db)]
        for grantee, privilege, grantable in found["acl"]:
            if privilege not in PRIVILEGES:  # a newer server's: not ours to spell
                notes.append(f"database grant of {privilege} not carried")
                continue
            stmts.append(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege),
                    db,
                    sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                    sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                )
            )
        run("grants", *stmts)
    return notes
