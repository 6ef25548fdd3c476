"""Work on daemon threads: one call with its outcome in a Future, or an
iterator produced ahead of its consumer.

Unlike a ThreadPoolExecutor's, the thread is not joined at exit: when the
other half of a concurrent pair fails, the error is printed and the process
ends at once, however long the background call would still take (a slow or
unreachable store, stdin that has not written yet).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
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


def ahead(
    items: Iterator[T], depth: int, *, name: str, join: bool = False
) -> Generator[T, None, None]:
    """`items`, produced by a thread at most `depth` ahead of the consumer;
    the producer's exception is raised in the consumer; stopping early (the
    load failed) lets the thread end. `join`: closing waits for the thread
    to end (when what it reads must not be in use afterwards)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, raised there
            put(("error", e))

    thread = threading.Thread(target=produce, daemon=True, name=name)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        if join:
            thread.join()
