"""pgferry: get data into any PostgreSQL."""

from pgferry.errors import PgferryError
from pgferry.imports import ImportResult, ImportSpec, import_from_s3, run_import
from pgferry.stores.s3 import S3Config

__all__ = ["ImportResult", "ImportSpec", "PgferryError", "S3Config", "import_from_s3", "run_import"]
