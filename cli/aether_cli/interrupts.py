"""Ctrl-C while following (logs, a rollout): stop at the next safe point.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be, which
can be inside a finalizer that urllib3 runs while a connection is collected; the
interpreter then prints ``Exception ignored in: <finalize object…>`` and carries on
as if nothing was pressed. Inside :func:`deferred`, the first Ctrl-C only records
the wish; the loop checks it between requests and while it waits. A second Ctrl-C
raises at once, for a request that hangs.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SLICE_SECONDS = 0.05  # how soon a wait notices Ctrl-C


class Interrupt:
    """Whether Ctrl-C was pressed, and a wait that ends when it is."""

    def __init__(self) -> None:
        self.requested = False

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as Ctrl-C was pressed."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, _SLICE_SECONDS))
        return True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` here, at a safe point, if Ctrl-C was pressed."""
        if self.requested:
            raise KeyboardInterrupt

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def deferred() -> Iterator[Interrupt]:
    """Defer Ctrl-C to :meth:`Interrupt.check` points for the duration of the block."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt  # signals only reach the main thread: nothing to defer
        return
    previous_handler = signal.signal(signal.SIGINT, interrupt._on_sigint)
    previous_hook = sys.unraisablehook

    def drop_interrupts(unraisable: Any) -> None:
        # A second Ctrl-C that lands in a finalizer: the wish is recorded already.
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            interrupt.requested = True
            return
        previous_hook(unraisable)

    sys.unraisablehook = drop_interrupts
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
