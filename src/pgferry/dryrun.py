"""`pgferry import --dry-run`: what a load would do, without loading.

Lists the objects (size, format, compression), and when the table would be
created, the CREATE TABLE pgferry would run, inferred from the first
object exactly as the load would. With --jobs N it says how the load would
use the connections, by the rules the load itself applies (many.jobs_plan,
parallel's split checks): whether two-phase commit is possible given the
target's max_prepared_transactions, or why it would load over one
connection. Reads only the start of each object (its first piece; a
Parquet file's footer) and changes nothing in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgferry import imports, infer
from pgferry.decode import charset, jsonl
from pgferry.fetch import checked, open_decoded
from pgferry.sink.names import display_table
from pgferry.sink.options import parse_copy_options
from pgferry.stores import ObjectRef
from pgferry.stores.listing import Listed, expand, is_many
from pgferry.target import connect, resolve_target


@dataclass
class PlannedObject:
    uri: str
    bytes: int
    format: str
    compression: str | None


@dataclass
class DryRun:
    table: str
    mode: str
    jobs: int
    committed: str
    objects: list[PlannedObject] = field(default_factory=list)
    ddl: str | None = None
    #: --jobs as given; `jobs` is what the load would use
    jobs_asked: int = 1
    #: how the connections would be used (None with --jobs 1)
    jobs_note: str | None = None
    #: whether the transactions would end together by two-phase commit
    two_phase: bool = False
    max_prepared_transactions: int | None = None

    def lines(self) -> list[str]:
        total = sum(o.bytes for o in self.objects)
        out = [
            f"plan: {len(self.objects)} {'object' if len(self.objects) == 1 else 'objects'}, "
            f'{total} bytes, into table "{self.table}" (--mode {self.mode}), '
            f"{self.jobs} {'connection' if self.jobs == 1 else 'connections'}, "
            + ("all or nothing" if self.committed == "all" else "committed per object")
        ]
        out += [
            f"  {o.uri}  {o.bytes} bytes  {o.format}  {o.compression or 'uncompressed'}"
            for o in self.objects
        ]
        if self.ddl:
            out.append(self.ddl + ";")
        if self.jobs_note:
            out.append(f"jobs: {self.jobs_note}")
        out.append("nothing was loaded (--dry-run)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "table": self.table,
            "mode": self.mode,
            "jobs": self.jobs,
            "jobs_asked": self.jobs_asked,
            "jobs_note": self.jobs_note,
            "two_phase": self.two_phase,
            "max_prepared_transactions": self.max_prepared_transactions,
            "committed": self.committed,
            "ddl": self.ddl,
            "bytes": sum(o.bytes for o in self.objects),
            "objects": [o.__dict__ for o in self.objects],
        }


def dry_run(spec: imports.ImportSpec, *, jobs: int = 1, commit_each: bool = False) -> DryRun:
    from pgferry import imports_formats as formats

    many = is_many(spec.source)
    if many:
        listed = expand(spec.source or "", spec.s3)
    else:
        ref = spec.object_ref()
        listed = [Listed(ref, -1)]
    result = DryRun(spec.table, spec.mode, 1, "each" if commit_each else "all", jobs_asked=jobs)
    for i, item in enumerate(listed):
        ref = item.ref
        fmt = formats.detect(spec.format, ref, spec.options)
        one = formats.with_copy_format(spec, fmt, ref) if fmt and fmt != "parquet" else spec
        if fmt not in formats.STRUCTURED:
            fmt = parse_copy_options(one.options).format if one.options.strip() else fmt
        planned = _look(one, ref, fmt or "text", ddl=i == 0)
        result.objects.append(planned[0])
        if i == 0:
            result.ddl = planned[1]
    if jobs > 1:
        if many:
            _plan_many_jobs(result, spec, len(listed), commit_each)
        else:
            _plan_ranges(result, spec)
    return result


def _plan_many_jobs(result: DryRun, spec: imports.ImportSpec, count: int, each: bool) -> None:
    from pgferry.many import jobs_plan

    asked = result.jobs_asked
    if count < 2:
        result.jobs_note = f"--jobs {asked} would use one connection: there is one object"
        return
    jobs = min(asked, count)  # as run_many: no more connections than objects
    with connect(resolve_target(spec.target)) as conn:
        usable, why, prepared = jobs_plan(conn, spec, jobs, each)
    result.jobs, result.max_prepared_transactions = usable, prepared
    if why:
        result.jobs_note = f"--jobs {jobs} would load over one connection: {why}"
    elif each:
        result.jobs_note = (
            f"{usable} connections take the objects in turn, each object committed on its "
            "own (no two-phase commit needed)"
        )
    else:
        result.two_phase = True
        result.jobs_note = (
            f"{usable} connections take the objects in turn; their transactions end together "
            f"by two-phase commit (max_prepared_transactions is {prepared}, at least {usable})"
        )


def _plan_ranges(result: DryRun, spec: imports.ImportSpec) -> None:
    """One object over N connections: parallel.py's own checks (read-only)."""
    from pgferry.parallel import MIN_RANGE, _splittable

    jobs = result.jobs_asked
    why, size, _, _ = _splittable(spec, spec.object_ref(), jobs)
    if why == "small":
        why = f"it is {size} bytes, under {jobs} ranges of {MIN_RANGE} bytes"
    if why:
        result.jobs_note = f"--jobs {jobs} would load it in one stream: {why}"
        return
    with connect(resolve_target(spec.target)) as conn:
        row = conn.execute("SHOW max_prepared_transactions").fetchone()
        conn.rollback()
    prepared = int(row[0]) if row else 0
    result.jobs, result.two_phase, result.max_prepared_transactions = jobs, True, prepared
    result.jobs_note = (
        f"the object is cut into {jobs} byte ranges, one connection each; their transactions "
        f"end together by two-phase commit (max_prepared_transactions is {prepared}, "
        f"at least {jobs})"
    )


def _look(spec: imports.ImportSpec, ref: ObjectRef, fmt: str, *, ddl: bool) -> tuple[Any, Any]:
    """(PlannedObject, CREATE TABLE or None) for one object."""
    plan = imports._plan(spec, ref)
    create = False
    if ddl and plan.create:
        with connect(resolve_target(spec.target)) as conn:
            create = plan.mode == "replace" or not imports._table_exists(conn, plan.table)
            conn.rollback()
    if fmt == "parquet":
        from pgferry.decode.parquet import ParquetSource

        src = ParquetSource(ref, spec.s3)
        try:
            found = src.columns(src.select(plan.columns)) if create else []
            size = src.size
        finally:
            src.close()
        return PlannedObject(ref.uri, size, fmt, None), _ddl(plan, found) if create else None
    with open_decoded(ref, spec.s3, content_encoding=spec.content_encoding) as obj:
        stream = obj.stream()
        cols: list[infer.Column] = []
        options = plan.options
        if fmt != "jsonl":
            # as the load: --encoding auto, then the checks both import paths
            # make (a zip is refused, a UTF-8 BOM dropped), so the plan and
            # its CREATE TABLE are the load's
            stream, encoding, _ = charset.prepare(stream, spec.encoding, options)
            options = charset.apply(options, encoding)
            head, stream = checked(
                stream,
                ref,
                codec=obj.codec,
                requested=spec.content_encoding,
                fmt=options.format,
                utf8=imports._utf8(options),
            )
        if create:
            if fmt == "jsonl":
                sample, _, complete = infer.peek(stream, infer.lines_enough(plan.sample_rows))
                if len(plan.columns) == 1:
                    cols = [infer.Column(plan.columns[0], "jsonb")]
                else:
                    cols = jsonl.infer_columns(sample, ref, complete)
            else:
                if not spec.options.strip():
                    options, _ = imports._options_from_name(ref, head, options, None)
                    options = charset.apply(options, encoding)
                wanted = plan.sample_rows + (1 if options.header else 0)
                sample, _, complete = infer.peek(stream, infer.lines_enough(wanted))
                cols = infer.infer_columns(
                    sample,
                    options,
                    plan.columns,
                    complete,
                    sample_rows=plan.sample_rows,
                    types=plan.types,
                    table=display_table(plan.table),
                    ref=ref,
                )
        else:
            next(stream, b"")  # the codec is known once the first bytes are read
        planned = PlannedObject(ref.uri, obj.size, fmt, obj.codec)
    return planned, _ddl(plan, cols) if create else None


def _ddl(plan: Any, cols: list[infer.Column]) -> str:
    typed = [infer.Column(c.name, plan.types.get(c.name, c.type), c.guessed) for c in cols]
    return infer.create_table_sql(plan.table, typed).as_string(None)
