"""Target names: folded to lower case unless --keep-case, and index and
constraint names made unique per schema (MySQL scopes them per table) and
cut to PostgreSQL's 63 bytes."""

from __future__ import annotations

import hashlib

MAX = 63


def _fit(name: str) -> str:
    if len(name.encode()) <= MAX:
        return name
    tag = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    head = name.encode()[: MAX - 9].decode("utf-8", "ignore")
    return f"{head}_{tag}"


class Namer:
    def __init__(self, keep_case: bool) -> None:
        self.keep_case = keep_case

    def _fold(self, name: str) -> str:
        return name if self.keep_case else name.lower()

    def table(self, name: str) -> str:
        return _fit(self._fold(name))

    def column(self, name: str) -> str:
        return _fit(self._fold(name))

    def index(self, table: str, name: str) -> str:
        return _fit(self._fold(f"{table}_{name}"))
