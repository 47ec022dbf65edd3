"""How a use case shares the machine's cores among its own threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from facereenact.model.inference import NeuralStage
from facereenact.stage import StageMethod


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


def generating_threads(method: StageMethod | None) -> AbstractContextManager[None]:
    """PyTorch's threads while a use case generates, pastes and encodes in threads of their own:
    one, so that its workers do not contend with the other two stages for the same cores
    (animating 200 frames with the warp on two cores took 3–7 % less time), unless ``method`` is
    a network PyTorch itself runs, which does most of the work and uses every core it gets (one
    thread made it 1.2 times slower). ``method`` None is the warp."""
    if isinstance(method, NeuralStage) and method.runtime == "torch":
        return nullcontext()
    return one_torch_thread()
