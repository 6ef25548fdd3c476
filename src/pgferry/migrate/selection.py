"""What a table selection (--table/--exclude) cannot restore, found in the
source's catalog and matched to the schema dump's entries by oid.

pg_dump -T leaves out the other tables, but not everything that needs them:
a function returning a left-out table's row type, a kept table's foreign
key to a left-out one, pg_dump 18's ALTER PUBLICATION ... ADD TABLE of a
left-out table.  Each is skipped with a note, and so is what needs it
(its grants, comments, triggers), through the dump's own dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgferry.migrate import catalog, schema
from pgferry.migrate.toc import Section


@dataclass
class LeftOut:
    #: dump ids to leave out of pre-data and of post-data
    pre: set[int] = field(default_factory=set)
    post: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def left_out(src: psycopg.Connection[Any], dump: Path, keep: set[int], kept: set[int]) -> LeftOut:
    """`keep`: the selected tables' oids; `kept`: those plus the views kept
    (catalog.kept_relations).  Reads the source in the caller's snapshot."""
    out = LeftOut()
    pre_entries = schema.toc(dump, Section.PRE_DATA)
    entries = pre_entries + schema.toc(dump, Section.POST_DATA)
    funcs = catalog.rowtype_users(src, kept)
    fks = catalog.foreign_key_oids(src, keep)
    pubs = catalog.publication_tables_left_out(src, kept)
    for name in catalog.left_out_views(src, keep, kept):
        out.notes.append(f"view {name} skipped: it reads a table left out")
    gone: set[int] = set()
    for e in entries:
        if e.desc in ("FUNCTION", "PROCEDURE", "AGGREGATE") and e.oid in funcs:
            out.notes.append(funcs[e.oid])
            gone.add(e.dump_id)
        elif e.desc == "FK CONSTRAINT" and e.oid in fks:
            out.notes.append(f"{e.describe()} skipped: it references a table left out")
            gone.add(e.dump_id)
        elif e.desc == "PUBLICATION TABLE" and e.oid in pubs:
            gone.add(e.dump_id)
    # what needs a skipped item (its ACL, comment, a trigger) goes too;
    # never a table: pre-data then fails loudly rather than lose its rows
    changed = True
    while changed:
        changed = False
        for e in entries:
            if e.dump_id not in gone and e.desc != "TABLE" and gone.intersection(e.deps):
                gone.add(e.dump_id)
                changed = True
                if e.desc not in ("ACL", "COMMENT", "SECURITY LABEL"):
                    out.notes.append(f"{e.describe()} skipped: it needs something skipped above")
    pre_ids = {e.dump_id for e in pre_entries}
    out.pre = gone & pre_ids
    out.post = gone - pre_ids
    return out
