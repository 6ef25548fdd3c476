"""Work that runs next to the rest of a clone: a thread started early whose
result is collected where its phase stands in the sequence.

On a small database every phase is short and most of the time is fixed
costs (processes, connections, round trips); running independent work side
by side hides some of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    def __init__(self, fn: Callable[[threading.Event], T], name: str) -> None:
        #: set when the clone gives up: `fn` should return soon
        self.stop = threading.Event()
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._value = self._fn(self.stop)
        except BaseException as e:  # handed to whoever collects the result
            self._error = e

    def result(self) -> T | None:
        """Wait for it; raises what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        """Ask it to stop and wait until it has (its error, if any, is dropped:
        the clone is already failing for another reason)."""
        self.stop.set()
        self._thread.join()
