"""Local files as an object store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from pgferry.errors import AccessDenied, ObjectNotFound, StoreError, UsageError
from pgferry.stores import ObjectRef

PIECE = 1 << 20


class LocalReader:
    def __init__(self, ref: ObjectRef) -> None:
        self.ref = ref
        self.content_encoding: str | None = None
        path = ref.key
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise ObjectNotFound(
                f"file {path} does not exist", hint="check the path", key=path, bucket=None
            ) from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a directory", hint="name one file", key=path) from None
        except PermissionError:
            raise AccessDenied(
                f"permission denied reading {path}",
                hint="check the file's permissions",
                key=path,
                bucket=None,
            ) from None
        except OSError as e:
            raise StoreError(f"cannot open {path}: {e.strerror}", key=path, bucket=None) from None
        self.size = os.fstat(self._file.fileno()).st_size

    def chunks(self) -> Iterator[bytes]:
        while piece := self._file.read(PIECE):
            yield piece

    def close(self) -> None:
        self._file.close()
