"""PyTorch's one process-wide thread count, limited by blocks that overlap."""

from __future__ import annotations

import threading

import torch

from facereenact.threads import one_torch_thread


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
