"""PyTorch's thread count, one for the whole process, limited for a while by blocks that may
overlap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch


class _OneThread:
    """PyTorch's thread count is one for the whole process: blocks that overlap (the web
    page's jobs run in threads of one process) share one limit, set by the first to enter and
    lifted by the last to leave, so that none gives back a count another one set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._threads = 1

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._threads = torch.get_num_threads()
                torch.set_num_threads(1)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    torch.set_num_threads(self._threads)


_ONE_THREAD = _OneThread()


def one_torch_thread() -> AbstractContextManager[None]:
    """PyTorch limited to one thread inside the block, given back its own count when the last
    such block ends."""
    return _ONE_THREAD.held()
