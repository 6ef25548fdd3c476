"""pgferry: get data into any PostgreSQL.

The public names load lazily: `pgferry --help` and the extension's fetcher
should not pay for importing psycopg and boto3 before they need them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgferry.errors import PgferryError
    from pgferry.imports import ImportResult, ImportSpec, import_from_s3, run_import
    from pgferry.stores.s3config import S3Config

_WHERE = {
    "PgferryError": "pgferry.errors",
    "ImportResult": "pgferry.imports",
    "ImportSpec": "pgferry.imports",
    "import_from_s3": "pgferry.imports",
    "run_import": "pgferry.imports",
    "S3Config": "pgferry.stores.s3config",
}
__all__ = [
    "ImportResult",
    "ImportSpec",
    "PgferryError",
    "S3Config",
    "import_from_s3",
    "run_import",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pgferry' has no attribute {name!r}")
