"""SQLite views into PostgreSQL, where that is safe.

SQLite keeps a view as the CREATE VIEW statement its author wrote.  It is
read token by token against the same kind of allow-list as MariaDB's views
(sources/views.py), with SQLite's own rules: names may be bare, "quoted",
`quoted` or [bracketed] and match tables and columns whatever their case
(they are written as the clone names that table or column; other names,
such as aliases, are folded to lower case); `||` concatenates in both
engines.  Left out, with the reason: LIKE and GLOB (SQLite's LIKE ignores
ASCII case), lower() and upper() (ASCII only in SQLite), `/` (SQLite divides
by the values' types, PostgreSQL by the columns'), and a string constant in
a comparison when a column of the database declares a collation (NOCASE,
RTRIM): with SQLite's default, BINARY, `=` compares exactly, as PostgreSQL's
does.  PostgreSQL then parses the result; what it refuses (SQLite's loose
GROUP BY, a table not cloned) is skipped with its message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psycopg import sql

from pgferry.sources.names import Namer
from pgferry.sources.views import Untranslatable, ViewDef

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
    |(?P<str>'(?:[^']|'')*')
    |(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<op>\|\||==|<=|>=|<>|!=|[=<>+\-*(),.])""",
    re.X,
)
_KEYWORDS = {
    "select", "distinct", "as", "from", "where", "and", "or", "not", "null", "is", "in",
    "join", "left", "right", "full", "inner", "outer", "cross", "on", "using", "group", "by",
    "order",
    "asc", "desc", "having", "union", "all", "except", "intersect", "case", "when", "then",
    "else", "end", "between", "exists", "limit", "offset",
}  # fmt: skip
#: same result in both engines for the same arguments
_FUNCTIONS = {"count", "sum", "min", "max", "avg", "coalesce", "nullif", "abs"}
#: SQLite words that are not names: refused by name rather than read as a column
_OTHER_WORDS = {
    "like", "glob", "regexp", "match", "escape", "collate", "cast", "natural", "with",
    "recursive", "window", "over", "filter", "partition", "rows", "range", "groups",
    "nulls", "first", "last", "isnull", "notnull", "indexed", "values", "raise", "true",
    "false", "current_date", "current_time", "current_timestamp", "rowid",
}  # fmt: skip
#: a FROM list ends at these
_CLAUSES = {"where", "group", "order", "having", "limit", "union", "except", "intersect", "on"}


@dataclass
class Names:
    """What a view's names can refer to: the source's tables and views
    (lower-cased source name -> target name), its columns (lower-cased ->
    target spellings) and whether any column declares a collation."""

    relations: dict[str, str] = field(default_factory=dict)
    columns: dict[str, set[str]] = field(default_factory=dict)
    collated: bool = False


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise Untranslatable(f"{text[pos:].split()[0]!r} has no checked PostgreSQL equivalent")
        if m.lastgroup != "ws":
            out.append((str(m.lastgroup), m.group()))
        pos = m.end()
    return out


def _name(kind: str, text: str) -> str:
    if kind == "word":
        return text
    if text[0] == "[":
        return text[1:-1]
    return text[1:-1].replace(text[0] * 2, text[0])


def _is_name(tok: tuple[str, str], names: Names) -> bool:
    kind, text = tok
    word = text.lower()
    if kind == "ident":
        return True
    if kind != "word" or word in _KEYWORDS | _FUNCTIONS:
        return False
    # a column may well be called "first" or "range"
    return word not in _OTHER_WORDS or word in names.columns or word in names.relations


def _column(name: str, names: Names, namer: Namer) -> str:
    spelled = names.columns.get(name.lower())
    if spelled is None:  # an alias, or a name PostgreSQL will judge
        return namer.column(name.lower())
    if len(spelled) > 1:
        raise Untranslatable(f"column {name!r} is spelled differently in two tables")
    return next(iter(spelled))


def _qualifier(name: str, names: Names, namer: Namer) -> str:
    """A table's name, or an alias: spelled as where it was declared."""
    return names.relations.get(name.lower()) or _column(name, names, namer)


def _header(toks: list[tuple[str, str]], namer: Namer) -> tuple[list[str], int]:
    """The view's column list (target names) and where its SELECT starts."""
    words = [t[1].lower() for t in toks]
    if "view" not in words or "as" not in words:
        raise Untranslatable("its definition is not a CREATE VIEW ... AS SELECT")
    i = words.index("view") + 1
    if words[i : i + 3] == ["if", "not", "exists"]:
        i += 3
    i += 1  # the name
    while i < len(toks) and toks[i][1] == ".":
        i += 2
    cols: list[str] = []
    if i < len(toks) and toks[i][1] == "(":
        i += 1
        while i < len(toks) and toks[i][1] != ")":
            if toks[i][1] != ",":
                cols.append(namer.column(_name(*toks[i])))
            i += 1
        i += 1
    if i >= len(toks) or words[i] != "as":
        raise Untranslatable("its definition is not a CREATE VIEW ... AS SELECT")
    return cols, i + 1


def translate(v: ViewDef, schema: str, names: Names, namer: Namer) -> sql.Composed:
    """CREATE VIEW for the target from SQLite's CREATE VIEW text
    (`v.definition`), or Untranslatable with the reason."""
    toks = _tokens(v.definition)
    cols, i = _header(toks, namer)
    out: list[sql.Composable] = []
    in_from = [False]  # per parenthesis level: inside a FROM list
    table_next = False
    while i < len(toks):
        kind, text = toks[i]
        word = text.lower()
        prev = toks[i - 1][1].lower() if i else ""
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if nxt == "(" and kind in ("word", "ident") and word not in _KEYWORDS | _FUNCTIONS:
            raise Untranslatable(f"{_name(kind, text)}() has no checked PostgreSQL equivalent")
        if _is_name(toks[i], names):
            chain = [_name(kind, text)]
            while i + 2 < len(toks) and toks[i + 1][1] == "." and _is_name(toks[i + 2], names):
                chain.append(_name(*toks[i + 2]))
                i += 2
            if chain[0].lower() == "main" and len(chain) > 1:
                chain = chain[1:]
            if table_next:
                if len(chain) != 1 or chain[0].lower() not in names.relations:
                    raise Untranslatable(f"it reads {'.'.join(chain)!r}, not a table or view")
                out.append(sql.Identifier(schema, names.relations[chain[0].lower()]))
                table_next = False
            elif toks[i + 1 : i + 3] == [("op", "."), ("op", "*")]:  # t.*
                out.append(sql.Identifier(_qualifier(chain[-1], names, namer)))
            else:
                *quals, last = chain
                parts = [_qualifier(q, names, namer) for q in quals]
                out.append(sql.Identifier(*parts, _column(last, names, namer)))
        elif kind == "str":
            shown = prev in ("select", "distinct", ",") and nxt.lower() in (",", "as", "from", "")
            if names.collated and not shown:
                raise Untranslatable(
                    f"it compares text ({text}) in a database whose columns declare"
                    " collations (NOCASE, RTRIM), which PostgreSQL does not follow"
                )
            out.append(sql.Literal(text[1:-1].replace("''", "'")))
        elif kind == "num":
            out.append(sql.SQL(text))
        elif kind == "word":
            if word in _OTHER_WORDS or (word not in _KEYWORDS and word not in _FUNCTIONS):
                raise Untranslatable(f"{text} has no checked PostgreSQL equivalent")
            if word in _FUNCTIONS and nxt != "(":
                raise Untranslatable(f"{text} has no checked PostgreSQL equivalent")
            if word in ("from", "join"):
                table_next = True
            if word == "from":
                in_from[-1] = True
            elif word in _CLAUSES:
                in_from[-1] = False
            out.append(sql.SQL(word))
        else:  # op
            if text == "(":
                in_from.append(False)
                table_next = False  # FROM (SELECT ...): a subquery, not a name
            elif text == ")" and len(in_from) > 1:
                in_from.pop()
            elif text == "," and in_from[-1]:
                table_next = True
            out.append(sql.SQL({"==": "=", "!=": "<>"}.get(text, text)))
        i += 1
    name: sql.Composable = sql.Identifier(schema, v.target)
    if cols:
        name = sql.SQL("{} ({})").format(name, sql.SQL(", ").join(map(sql.Identifier, cols)))
    return sql.SQL("CREATE VIEW {} AS {}").format(name, sql.SQL(" ").join(out))
