"""A one-column result read straight off the MySQL wire.

PyMySQL parses each row packet in pure Python through several method
calls; for the fast path's one-column results (a ready COPY line per row)
that per-row overhead was most of a clone's time.  This reads the row
packets itself from PyMySQL's socket file, after PyMySQL sent the query and
read the column definitions with its own (private, stable since 0.7)
methods, and yields each value as bytes, still UTF-8: COPY takes them as
they are.  PyMySQL does not ask for CLIENT_DEPRECATE_EOF, so the rows end
with an EOF packet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
from pymysql.constants import COMMAND

from pgferry.errors import SourceUnreachable

_MAX = 0xFFFFFF


def _read(rfile: Any, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise SourceUnreachable(
            "source: the MariaDB/MySQL server closed the connection in the middle of a table",
            hint="check the server's log, then rerun with --resume",
        )
    return bytes(data)


def _packet(rfile: Any) -> bytes:
    header = _read(rfile, 4)
    length = int.from_bytes(header[:3], "little")
    data = _read(rfile, length)
    while length == _MAX:  # a value over 16 MB spans several packets
        header = _read(rfile, 4)
        length = int.from_bytes(header[:3], "little")
        data += _read(rfile, length)
    return data


def one_column(conn: Any, statement: str) -> Iterator[bytes | None]:
    """Run `statement` (one column) and yield its values as bytes."""
    conn._execute_command(COMMAND.COM_QUERY, statement)
    first = conn._read_packet()  # raises the server's error, as PyMySQL does
    count = first.read_length_encoded_integer()
    for _ in range(count):
        conn._read_packet()
    conn._read_packet()  # EOF after the column definitions
    rfile = conn._rfile
    done = False
    try:
        while True:
            data = _packet(rfile)
            head = data[0]
            if head == 0xFE and len(data) < 9:
                done = True
                return
            if head == 0xFF:
                done = True
                pymysql.err.raise_mysql_exception(data)
            if head < 251:
                yield data[1 : 1 + head]
            elif head == 251:
                yield None
            else:
                width = {252: 2, 253: 3, 254: 8}[head]
                n = int.from_bytes(data[1 : 1 + width], "little")
                yield data[1 + width : 1 + width + n]
    finally:
        if not done:  # rows left unread: the connection cannot be reused
            conn.close()
