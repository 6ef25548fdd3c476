"""Export upload: COPY TO output from stdin into S3 objects of about
`part_size` bytes, named KEY, KEY_part2, KEY_part3, ... like aws_s3.

The splitting at row ends is stores/parts.py's, shared with `pgferry
export`. Memory stays bounded: each part goes up through the shared
multipart writer (stores/multipart.py) in 8 MiB pieces, a single PUT when
it is smaller.
"""

from __future__ import annotations

from typing import BinaryIO

from pgferry import units
from pgferry.errors import PgferryError
from pgferry.extension.options import parse_for
from pgferry.stores.multipart import Encryption, MultipartWriter
from pgferry.stores.parts import PartSplitter, row_ends
from pgferry.stores.s3 import S3Config, make_client, map_error

DEFAULT_PART = 6 << 30  # aws_s3's part size: about 6 GB


def parse_size(text: object) -> int:
    if text is None or text == "":
        return DEFAULT_PART
    size = units.parse_size(
        str(text), what="aws_s3.export_part_size", hint="e.g. 6GB, 64MB or 1048576"
    )
    assert size is not None  # without allow_none it is a positive int or an error
    return size


def upload_parts(
    source: BinaryIO,
    *,
    bucket: str,
    key: str,
    config: S3Config,
    options: str,
    part_size: object,
    kms_key: str | None = None,
    read_size: int = 1 << 20,
) -> tuple[int, int]:
    """Upload all of `source`; return (files, bytes)."""
    limit = parse_size(part_size)
    opts = parse_for(options, "export")
    ends = row_ends(opts)
    enc = Encryption("aws:kms", kms_key) if kms_key else Encryption()
    client = make_client(config, config.region)
    parts = PartSplitter(
        lambda k: MultipartWriter(client, bucket, k, enc=enc),
        key,
        limit,
        ends,
        split=opts.format != "binary",
    )
    try:
        while chunk := source.read(read_size):
            parts.write(chunk)
        files = len(parts.close())
    except (PgferryError, KeyboardInterrupt):  # cancelled: upload nothing more
        parts.abort()
        raise
    except Exception as e:
        parts.abort()
        raise map_error(e, bucket, key) from None
    return files, parts.total
