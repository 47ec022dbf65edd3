"""PyTorch's threads while animate generates, pastes and encodes at once."""

from __future__ import annotations

import threading

import pytest
import torch

from facereenact.app.cores import generating_threads, one_torch_thread
from facereenact.model.config import ModelConfig
from facereenact.model.generator import Generator
from facereenact.model.inference import NeuralStage
from facereenact.warp.geometric import WarpMethod


@pytest.fixture
def two_threads():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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


def test_overlapping_blocks_in_two_threads_give_the_count_back_once_both_end(two_threads) -> None:  # type: ignore[no-untyped-def]
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with one_torch_thread():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with one_torch_thread():
            second_in.set()
            first_out.wait(5)  # the first block has ended: this one still runs on one thread
            seen.append(torch.get_num_threads())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [1]
    assert torch.get_num_threads() == 2, "the count from before the first block, not the first block's 1"
