"""PyTorch's threads while animate generates, pastes and encodes at once."""

from __future__ import annotations

import pytest
import torch

from facereenact.app.cores import generating_threads
from facereenact.model.config import ModelConfig
from facereenact.model.generator import Generator
from facereenact.model.inference import NeuralStage
from facereenact.warp.geometric import WarpMethod


def test_the_warp_generates_on_one_thread_and_gives_the_count_back(two_threads) -> None:  # type: ignore[no-untyped-def]
    for method in (None, WarpMethod()):
        with generating_threads(method):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2


def test_the_count_comes_back_when_the_block_fails(two_threads) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), generating_threads(None):
        raise RuntimeError("a failed frame")
    assert torch.get_num_threads() == 2


def test_a_network_run_by_pytorch_keeps_every_thread(two_threads) -> None:  # type: ignore[no-untyped-def]
    network = NeuralStage(Generator(ModelConfig(resolution=32, base=4, corr_channels=8)), torch.device("cpu"))
    assert network.runtime == "torch"
    with generating_threads(network):
        assert torch.get_num_threads() == 2
