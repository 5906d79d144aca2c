"""Tensor helpers shared by the masking modules (torch is imported lazily)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def _torch():
    import torch

    return torch


def _as_tensor(x: Any, device: Any = None) -> torch.Tensor:
    """A torch tensor view of ``x`` (numpy arrays are wrapped without a copy)."""
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        t = torch.as_tensor(np.asarray(x))
    return t if device is None else t.to(device)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The inputs' floating dtype promoted to at least float32."""
    torch = _torch()
    dt = torch.float32
    for t in tensors:
        if t.is_floating_point():
            dt = torch.promote_types(dt, t.dtype)
    return dt


#: torch intra-op threads for the CPU statistics. One: every pass is memory-bound and
#: per-row, and a multi-threaded torch op waits for its slowest thread, so one busy core on
#: the machine made the default (all cores) 70x slower (14.7 ms -> 1,026 ms at 512 x 8192,
#: issue 10); with one thread a busy neighbour costs what it takes from that core
#: (``experiments/bench_evaluate.py``, section ``threads``).
CPU_THREADS = 1


@contextmanager
def cpu_threads(n: int | None = CPU_THREADS) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the caller's setting
    (``n=None``: leave it alone)."""
    torch = _torch()
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _row_sum(x: torch.Tensor) -> torch.Tensor:
    """Per-row sums of a ``(b, n)`` tensor, each in an order fixed by ``n`` alone.

    torch reduces each row of a tensor with at least two rows by one thread, in an order that
    depends only on the row length; a tensor with ONE row of at least 32768 elements is
    instead split across threads (a thread-count-dependent order). A one-row input is
    therefore reduced as two stride-0 copies of itself (no copy is made), which takes the
    per-row path: a row's sum never depends on the block it was evaluated in.
    """
    if x.shape[0] == 1 and x.device.type == "cpu":
        return x.expand(2, -1).sum(dim=1)[:1]
    return x.sum(dim=1)
