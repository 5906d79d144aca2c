"""Tensor helpers shared by the masking modules (torch is imported lazily)."""

from __future__ import annotations

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
