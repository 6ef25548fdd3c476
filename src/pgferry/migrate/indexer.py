"""Build a table's indexes as soon as its rows are in, while other tables
are still being copied.

The biggest table usually finishes last; without this its smaller
neighbours' indexes would wait for it and the CPU would idle meanwhile.
Only a table's own indexes and its primary key, unique, check and exclusion
constraints go early.  Foreign keys and partition index attachments wait
for the index phase, which builds whatever is still missing.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate.schema import RestoreOptions, restore_list
from pgferry.migrate.toc import TocEntry
from pgferry.migrate.tools import Tool
from pgferry.target import connect

OWNERS_SQL = """
SELECT 'pg_class'::regclass::oid, x.indexrelid, tn.nspname, t.relname
  FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE t.relkind = 'r'
UNION ALL
SELECT 'pg_constraint'::regclass::oid, k.oid, n.nspname, t.relname
  FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE k.contype <> 'f' AND t.relkind = 'r'
"""


def by_table(src: psycopg.Connection[Any], entries: list[TocEntry]) -> dict[str, list[TocEntry]]:
    """INDEX and non-foreign-key CONSTRAINT entries of plain tables, per table
    ('schema.name'), matched to the source's catalog by the entries' oids."""
    owner = {(int(r[0]), int(r[1])): f"{r[2]}.{r[3]}" for r in src.execute(OWNERS_SQL)}
    out: dict[str, list[TocEntry]] = {}
    for e in entries:
        table = owner.get((e.tableoid, e.oid))
        if e.desc in ("INDEX", "CONSTRAINT") and table is not None:
            out.setdefault(table, []).append(e)
    return out


class Indexer:
    def __init__(
        self,
        pg_restore: Tool,
        dump: Path,
        target: str,
        opts: RestoreOptions,
        workdir: Path,
        entries: dict[str, list[TocEntry]],
        jobs: int,
    ) -> None:
        self.pg_restore = pg_restore
        self.dump = dump
        self.target = target
        self.opts = opts
        self.workdir = workdir
        self.entries = entries
        self.pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="pgferry-index")
        self.futures: list[Future[None]] = []
        #: tables whose indexes are built and that were vacuumed
        self.finished: set[str] = set()

    def table_done(self, table: str, ident: sql.Identifier) -> None:
        self.futures.append(self.pool.submit(self._build, table, ident))

    def _build(self, table: str, ident: sql.Identifier) -> None:
        todo = self.entries.get(table, [])
        if todo:
            restore_list(
                self.pg_restore,
                self.dump,
                self.target,
                todo,
                jobs=1,
                opts=self.opts,
                what=f"indexes of {table}",
                workdir=self.workdir,
            )
        with connect(self.target, autocommit=True) as c:
            c.execute(sql.SQL("VACUUM (ANALYZE) {}").format(ident))
        self.finished.add(table)

    def wait(self) -> None:
        try:
            for f in self.futures:
                f.result()
        finally:
            self.close()

    def close(self) -> None:
        for f in self.futures:
            f.cancel()
        self.pool.shutdown(wait=True)
