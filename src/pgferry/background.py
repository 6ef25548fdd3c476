"""Run one call on a daemon thread, its outcome in a Future.

Unlike a ThreadPoolExecutor's, the thread is not joined at exit: when the
other half of a concurrent pair fails, the error is printed and the process
ends at once, however long the background call would still take (a slow or
unreachable store, stdin that has not written yet).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def start(fn: Callable[..., T], *args: Any, name: str, **kw: Any) -> Future[T]:
    done: Future[T] = Future()

    def run() -> None:
        done.set_running_or_notify_cancel()
        try:
            done.set_result(fn(*args, **kw))
        except BaseException as e:  # the caller's result() raises it
            done.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done
