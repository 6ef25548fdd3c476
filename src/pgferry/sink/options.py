"""COPY options: parse what users write, render it back safely.

aws_s3 takes COPY options as free text in both of PostgreSQL's forms: the
parenthesised list `(format csv, header true)` and the old keyword form
`DELIMITER '|' CSV HEADER` / `encoding 'WIN1252'`. We parse both into a
typed mapping of known options and render it with psycopg.sql, so nothing
the user typed reaches the server unparsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from psycopg import sql

from pgferry.errors import CopyOptionsError
from pgferry.sink.names import split_identifiers

# option -> kind of value
_STRING = {"delimiter", "null", "default", "quote", "escape", "encoding"}
_BOOL = {"freeze", "header"}
_WORD = {
    "format": {"text", "csv", "binary"},
    "on_error": {"stop", "ignore"},
    "log_verbosity": {"default", "verbose", "silent"},
}
_COLUMNS = {"force_not_null", "force_null", "force_quote"}
_INT = {"reject_limit"}
# options PostgreSQL takes as exactly one byte, with an example for the hint
_ONE_CHAR = {"delimiter": "|", "quote": '"', "escape": "\\"}
KNOWN = _STRING | _BOOL | set(_WORD) | _COLUMNS | _INT
_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>[Ee]?'(?:[^']|'')*')
      | (?P<qid>"(?:[^"]|"")*")
      | (?P<num>-?\d+)
      | (?P<word>[A-Za-z_][A-Za-z0-9_$-]*)
      | (?P<punct>[(),*])
    )""",
    re.VERBOSE,
)


@dataclass
class CopyOptions:
    """Known COPY options, values already validated."""

    values: dict[str, str | bool | int | tuple[str, ...] | None] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return str(self.values.get("format") or "text")

    @property
    def header(self) -> bool:
        return self.values.get("header") in (True, "match")

    @property
    def encoding(self) -> str | None:
        enc = self.values.get("encoding")
        return str(enc) if enc else None

    @property
    def delimiter(self) -> str:
        d = self.values.get("delimiter")
        return str(d) if d else ("," if self.format == "csv" else "\t")

    def render(self) -> sql.Composable:
        """`(FORMAT csv, DELIMITER '|')` or empty: safe to splice into COPY."""
        parts: list[sql.Composable] = []
        for name, value in self.values.items():
            key = sql.SQL(name.upper())
            if isinstance(value, bool):
                parts.append(sql.SQL("{} {}").format(key, sql.SQL("true" if value else "false")))
            elif isinstance(value, int):
                parts.append(sql.SQL("{} {}").format(key, sql.Literal(value)))
            elif value == ("*",):
                parts.append(sql.SQL("{} *").format(key))
            elif isinstance(value, tuple):
                cols = sql.SQL(", ").join(map(sql.Identifier, value))
                parts.append(sql.SQL("{} ({})").format(key, cols))
            elif name in _WORD or (name == "header" and value == "match"):
                parts.append(sql.SQL("{} {}").format(key, sql.SQL(str(value))))
            else:
                parts.append(sql.SQL("{} {}").format(key, sql.Literal(value)))
        if not parts:
            return sql.SQL("")
        return sql.SQL("({})").format(sql.SQL(", ").join(parts))


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            raise CopyOptionsError(
                f"cannot parse COPY options near {rest[:20]!r}",
                hint="write them as in COPY, e.g. '(format csv, header true)' or 'DELIMITER ''|'''",
            )
        kind = m.lastgroup or ""
        yield kind, m.group(kind)
        pos = m.end()


def _unquote(kind: str, raw: str) -> str:
    if kind == "str":
        if raw[0] in "Ee":
            raise CopyOptionsError(
                f"escape-string constants are not supported in COPY options: {raw}",
                hint="use a plain quoted string, e.g. DELIMITER '|'",
            )
        return raw[1:-1].replace("''", "'")
    if kind == "qid":
        return raw[1:-1].replace('""', '"')
    return raw


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.toks = list(_tokens(text))
        self.i = 0
        self.out: dict[str, str | bool | int | tuple[str, ...] | None] = {}

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise CopyOptionsError("COPY options end too early", hint="a value is missing")
        self.i += 1
        return tok

    def parse(self) -> CopyOptions:
        tok = self.peek()
        if tok is None:
            return CopyOptions()
        if tok == ("punct", "("):
            self.take()
            self.modern()
        else:
            if tok[1].lower() == "with":
                self.take()
                return self.parse()
            self.legacy()
        if self.peek() is not None:
            raise CopyOptionsError(
                f"unexpected {self.peek()[1]!r} after the COPY options",  # type: ignore[index]
                hint="remove it",
            )
        return CopyOptions(self.out)

    def modern(self) -> None:
        while True:
            kind, word = self.take()
            if kind != "word":
                raise CopyOptionsError(f"expected an option name, got {word!r}", hint="see COPY")
            name = word.lower()
            nxt = self.peek()
            if name in _BOOL and (nxt is None or nxt[1] in (",", ")")):
                self.set(name, True)
            elif name in _COLUMNS:
                self.set(name, self.columns())
            else:
                kind, raw = self.take()
                self.set_value(name, kind, raw)
            kind, punct = self.take()
            if punct == ")":
                return
            if punct != ",":
                raise CopyOptionsError(
                    f"expected ',' or ')' in COPY options, got {punct!r}", hint="see COPY"
                )

    def columns(self) -> tuple[str, ...]:
        nxt = self.peek()
        if nxt == ("punct", "*"):
            self.take()
            return ("*",)
        if nxt == ("punct", "("):
            self.take()
            text = []
            while (tok := self.take()) != ("punct", ")"):
                text.append(tok[1])
            return tuple(split_identifiers("".join(text)))
        raise CopyOptionsError(
            "expected a column list in parentheses or *", hint="e.g. FORCE_NULL (a, b)"
        )

    def legacy(self) -> None:
        while self.peek() is not None:
            kind, word = self.take()
            w = word.lower()
            if w in ("binary", "csv"):
                self.set("format", w)
            elif w in ("header", "freeze"):
                self.set(w, True)
            elif w in ("delimiter", "null", "quote", "escape", "encoding"):
                if (self.peek() or ("", ""))[1].lower() == "as":
                    self.take()
                self.set_value(w, *self.take())
            elif w == "force":
                what = self.take()[1].lower()
                if what == "not":
                    self.take()  # NULL
                    name = "force_not_null"
                else:
                    name = "force_null" if what == "null" else "force_quote"
                cols = []
                while True:
                    kind, col = self.take()
                    cols.append(_unquote(kind, col) if kind == "qid" else col.lower())
                    if self.peek() != ("punct", ","):
                        break
                    self.take()
                self.set(name, tuple(cols))
            elif w in KNOWN or word == ",":
                # `format csv, header true`: the modern list, parentheses forgotten
                raise CopyOptionsError(
                    f"COPY options {self.text!r} are a list without its parentheses",
                    hint=f"write them as '({self.text})'",
                )
            else:
                raise CopyOptionsError(f"unknown COPY option {word!r}", hint=_known_hint())

    def set_value(self, name: str, kind: str, raw: str) -> None:
        if name not in KNOWN:
            raise CopyOptionsError(f"unknown COPY option {name!r}", hint=_known_hint())
        value = _unquote(kind, raw)
        if name in _BOOL:
            low = value.lower()
            if name == "header" and low == "match":
                self.set(name, "match")
            elif low in _TRUE | _FALSE:
                self.set(name, low in _TRUE)
            else:
                raise CopyOptionsError(
                    f"{name} must be true or false, not {value!r}", hint="e.g. header true"
                )
        elif name in _WORD:
            if value.lower() not in _WORD[name]:
                allowed = ", ".join(sorted(_WORD[name]))
                raise CopyOptionsError(
                    f"{name} must be one of {allowed}, not {value!r}", hint="see COPY"
                )
            self.set(name, value.lower())
        elif name in _INT:
            if kind != "num":
                raise CopyOptionsError(f"{name} must be a number, not {value!r}", hint="see COPY")
            self.set(name, int(value))
        else:
            if kind != "str":
                raise CopyOptionsError(
                    f"{name} takes a quoted string, not {raw!r}", hint=f"e.g. {name.upper()} '|'"
                )
            if name in _ONE_CHAR and len(value.encode()) != 1:
                raise CopyOptionsError(
                    f"COPY {name} must be one single-byte character, not {value!r}",
                    hint=f"e.g. {name} '{_ONE_CHAR[name]}'",
                )
            if name == "encoding" and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
                raise CopyOptionsError(
                    f"invalid encoding name {value!r}", hint="e.g. encoding 'WIN1252'"
                )
            self.set(name, value)

    def set(self, name: str, value: str | bool | int | tuple[str, ...]) -> None:
        if name in self.out:
            raise CopyOptionsError(f"COPY option {name!r} given twice", hint="keep one")
        self.out[name] = value


def _known_hint() -> str:
    return "known options: " + ", ".join(sorted(KNOWN))


def parse_copy_options(text: str | None) -> CopyOptions:
    """Parse aws_s3-style COPY options text; raise CopyOptionsError on anything unknown."""
    opts = _Parser(text or "").parse()
    if opts.format == "binary" and (
        {"delimiter", "null", "header", "quote", "escape"} & set(opts.values)
    ):
        raise CopyOptionsError("binary format takes no text options", hint="drop them or use csv")
    return opts


def check_copy_from(opts: CopyOptions) -> None:
    """Refuse, before any byte is read, options COPY FROM rejects: the server
    would otherwise report them as a failure of the load."""
    if "force_quote" in opts.values:
        raise CopyOptionsError(
            "force_quote only applies to exports (COPY TO), not to an import",
            hint="drop it; to read quoted empty strings as NULL use force_null",
        )
    if "reject_limit" in opts.values and opts.values.get("on_error") != "ignore":
        raise CopyOptionsError(
            "reject_limit needs on_error ignore", hint="add on_error ignore to the options"
        )
