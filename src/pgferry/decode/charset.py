"""`--encoding auto`: tell UTF-8 (with or without a BOM), UTF-16 and
Windows-1252 apart from a file's first bytes.

UTF-8 and Windows-1252 go to COPY as its `encoding` option (the server
converts); UTF-16, which COPY cannot read, is converted to UTF-8 here, in
bounded pieces. Windows-1252 is the fallback for bytes that are not UTF-8:
it is what spreadsheets on Windows write, and it decodes any byte but five.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from pgferry.errors import UsageError
from pgferry.sink.options import CopyOptions

PROBE = 64 << 10


def detect(head: bytes, complete: bool) -> str:
    """UTF8, UTF16LE, UTF16BE or WIN1252 for a file starting with `head`."""
    if head.startswith(codecs.BOM_UTF8):
        return "UTF8"
    if head.startswith(codecs.BOM_UTF16_LE):
        return "UTF16LE"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "UTF16BE"
    probe = head[:PROBE]
    if len(probe) >= 4:
        # ASCII-range text in UTF-16 without a BOM: a NUL in every other byte
        even, odd = probe[0::2].count(0), probe[1::2].count(0)
        if odd > len(probe) * 0.4 and even == 0:
            return "UTF16LE"
        if even > len(probe) * 0.4 and odd == 0:
            return "UTF16BE"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(probe, final=complete and probe == head)
        return "UTF8"
    except UnicodeDecodeError:
        return "WIN1252"


def to_utf8(stream: Iterator[bytes], charset: str) -> Iterator[bytes]:
    """UTF-16 `stream` as UTF-8 (a BOM dropped); errors name the encoding."""
    name = "utf-16-le" if charset == "UTF16LE" else "utf-16-be"
    decoder = codecs.getincrementaldecoder(name)()
    first = True
    for chunk in stream:
        text = decoder.decode(chunk)
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        if text:
            yield text.encode("utf-8")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode("utf-8")


def prepare(
    stream: Iterator[bytes], wanted: str | None, options: CopyOptions
) -> tuple[Iterator[bytes], str | None, str | None]:
    """(stream to load, COPY encoding to set or None, what was detected)."""
    if not wanted:
        return stream, None, None
    if wanted.lower() != "auto":
        _check(options, wanted)
        return stream, wanted, None
    _check(options, "auto")
    from pgferry import infer

    head, stream, complete = infer.peek(stream, infer.bytes_enough(PROBE))
    found = detect(head, complete)
    if found.startswith("UTF16"):
        return to_utf8(stream, found), "UTF8", found
    return stream, found, found


def apply(options: CopyOptions, encoding: str | None) -> CopyOptions:
    if not encoding or options.encoding:
        return options
    return CopyOptions({**options.values, "encoding": encoding})


def _check(options: CopyOptions, wanted: str) -> None:
    if options.encoding:
        raise UsageError(
            f"--encoding {wanted} and --options encoding {options.encoding!r} disagree",
            hint="drop one of them",
        )
