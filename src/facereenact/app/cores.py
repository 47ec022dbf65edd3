"""How a use case shares the machine's cores among its own threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from facereenact.model.inference import NeuralStage
from facereenact.stage import StageMethod


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """PyTorch limited to one thread inside the block, given back its own count after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def generating_threads(method: StageMethod | None) -> AbstractContextManager[None]:
    """PyTorch's threads while a use case generates, pastes and encodes in threads of their own:
    one, so that its workers do not contend with the other two stages for the same cores
    (animating 200 frames with the warp on two cores took 3–7 % less time), unless ``method`` is
    a network PyTorch itself runs, which does most of the work and uses every core it gets (one
    thread made it 1.2 times slower). ``method`` None is the warp."""
    if isinstance(method, NeuralStage) and method.runtime == "torch":
        return nullcontext()
    return one_torch_thread()
