"""Local files as an object store, and standard input (`-`).

A pipe, a FIFO or /dev/stdin has no size up front: `size` then counts the
bytes actually read, so the final report says how much arrived.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

from pgferry.errors import AccessDenied, ObjectNotFound, StoreError, UsageError
from pgferry.stores import STDIN, ObjectRef

PIECE = 1 << 20


class LocalReader:
    def __init__(self, ref: ObjectRef) -> None:
        self.ref = ref
        self.content_encoding: str | None = None
        path = ref.key
        self._own = path != STDIN
        self._file: BinaryIO
        if not self._own:
            self._file = sys.stdin.buffer
            self._open_size()
            return
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
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
        self._open_size()

    def _open_size(self) -> None:
        try:
            st = os.fstat(self._file.fileno())
            self._counting = not stat.S_ISREG(st.st_mode)
        except (OSError, ValueError):  # a replaced sys.stdin without a descriptor
            st, self._counting = None, True
        self.size = 0 if self._counting or st is None else st.st_size

    def chunks(self) -> Iterator[bytes]:
        while piece := self._file.read(PIECE):
            if self._counting:
                self.size += len(piece)
            yield piece

    def close(self) -> None:
        if self._own:
            self._file.close()
