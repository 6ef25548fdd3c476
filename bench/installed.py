"""Benchmarks time `pgferry` as a pip install runs it: with its bytecode
compiled.  This environment sets PYTHONDONTWRITEBYTECODE, so an editable
install would recompile every pgferry module at each start (30-50 ms of CPU
per process that an installed copy never pays)."""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_pgferry() -> None:
    import pgferry

    compileall.compile_dir(Path(pgferry.__file__).parent, quiet=1)
