"""How a use case shares the machine's cores among its own threads."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from facereenact.model.inference import NeuralStage
from facereenact.stage import StageMethod
from facereenact.threads import one_torch_thread

__all__ = ["generating_threads", "one_torch_thread"]


def generating_threads(method: StageMethod | None) -> AbstractContextManager[None]:
    """PyTorch's threads while a use case generates, pastes and encodes in threads of their own:
    one, so that its workers do not contend with the other two stages for the same cores
    (animating 200 frames with the warp on two cores took 3–7 % less time), unless ``method`` is
    a network PyTorch itself runs, which does most of the work and uses every core it gets (one
    thread made it 1.2 times slower). ``method`` None is the warp."""
    if isinstance(method, NeuralStage) and method.runtime == "torch":
        return nullcontext()
    return one_torch_thread()
