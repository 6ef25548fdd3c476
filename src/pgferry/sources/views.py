"""MariaDB/MySQL views into PostgreSQL, where that is safe.

The server keeps a view's definition in one canonical form (every name
backquoted and qualified by its database, keywords in lower case).  It is
translated token by token against an allow-list: the keywords and
functions below mean the same in both engines; anything else (a function
such as GROUP_CONCAT or IF, `||`, `/`, which is integer division in
PostgreSQL, a string compared with `=`, `IN` or `LIKE`, which MariaDB's
usual collations do case-insensitively) leaves the view out, with the
reason in a note.  PostgreSQL then parses the result; what it refuses
(MySQL's loose GROUP BY, a table not cloned) is skipped with its message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from pgferry.sources.names import Namer


@dataclass
class ViewDef:
    name: str  # on the source
    target: str
    definition: str  # the server's canonical SELECT
    check_option: str = "NONE"  # NONE, CASCADED or LOCAL


class Untranslatable(Exception):
    """Why a view is left out."""


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<ident>`(?:[^`]|``)*`)
    |(?P<str>'(?:[^'\\]|''|\\.)*')
    |(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<op><=|>=|<>|!=|[=<>+\-*(),.])""",
    re.X,
)
_KEYWORDS = {
    "select", "distinct", "as", "from", "where", "and", "or", "not", "null", "is", "in",
    "join", "left", "right", "inner", "outer", "cross", "on", "using", "group", "by", "order",
    "asc", "desc", "having", "union", "all", "case", "when", "then", "else", "end", "between",
    "exists", "true", "false", "limit",
}  # fmt: skip
#: same result in both engines for the same arguments
_FUNCTIONS = {"count", "sum", "min", "max", "avg", "coalesce", "nullif", "lower", "upper", "abs"}
_COMPARE = {"=", "<>", "!=", "<", ">", "<=", ">="}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            what = text[pos:].split()[0]
            raise Untranslatable(f"{what!r} has no checked PostgreSQL equivalent")
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _unquote(ident: str) -> str:
    return ident[1:-1].replace("``", "`")


def translate(v: ViewDef, db: str, schema: str, namer: Namer) -> sql.Composed:
    """CREATE VIEW for the target, or Untranslatable with the reason."""
    toks = _tokens(v.definition)
    out: list[sql.Composable] = []
    parens: list[bool] = []  # per open parenthesis: is it an IN (...) list
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        prev = toks[i - 1] if i else ("", "")
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "ident":
            chain = [_unquote(text)]
            while i + 2 < len(toks) and toks[i + 1][1] == "." and toks[i + 2][0] == "ident":
                chain.append(_unquote(toks[i + 2][1]))
                i += 2
            if len(chain) == 3 and chain[0] != db:
                raise Untranslatable(f"it reads database {chain[0]!r}, which is not cloned")
            if len(chain) == 3:  # db.table.column
                out.append(sql.Identifier(namer.table(chain[1]), namer.column(chain[2])))
            elif len(chain) == 2 and chain[0] == db:  # db.table
                out.append(sql.Identifier(schema, namer.table(chain[1])))
            else:  # alias.column, column, alias
                out.append(sql.Identifier(*(namer.column(c) for c in chain)))
        elif kind == "str":
            body = text[1:-1]
            if "\\" in body:
                raise Untranslatable("a string literal with backslash escapes")
            if (
                prev[1] in _COMPARE
                or nxt[1] in _COMPARE
                or (parens and parens[-1])
                or prev[1].lower() in ("like", "when", "between")  # CASE x WHEN 'a'
            ):
                raise Untranslatable(
                    f"it compares text ({text}): MariaDB/MySQL collations usually ignore case,"
                    " PostgreSQL's do not"
                )
            out.append(sql.Literal(body.replace("''", "'")))
        elif kind == "num":
            out.append(sql.SQL(text))
        elif kind == "word":
            word = text.lower()
            if nxt[1] == "(" and word not in _FUNCTIONS | {"in", "exists", "on", "using"}:
                if word not in _KEYWORDS:
                    raise Untranslatable(f"{text}() has no checked PostgreSQL equivalent")
            elif word not in _KEYWORDS and word not in _FUNCTIONS:
                raise Untranslatable(f"{text} has no checked PostgreSQL equivalent")
            out.append(sql.SQL(word))
        else:  # op
            if text == "(":
                parens.append(prev[1].lower() == "in")
            elif text == ")" and parens:
                parens.pop()
            out.append(sql.SQL("<>" if text == "!=" else text))
        i += 1
    select = sql.SQL(" ").join(out)
    stmt = sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(schema, v.target), select)
    if v.check_option in ("CASCADED", "LOCAL"):
        stmt = sql.SQL("{} WITH {} CHECK OPTION").format(stmt, sql.SQL(v.check_option))
    return stmt
