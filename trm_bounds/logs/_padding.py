"""Shared array helpers of the readers: tensors to numpy, the canonical float dtype, and
ragged (flattened values + lengths) to right-padded ``(B, T)`` arrays without Python loops."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__: list[str] = []


def to_numpy(x: Any) -> np.ndarray:
    """Tensor/list/array -> numpy without copying where possible (bf16 goes via float32)."""
    if hasattr(x, "detach"):  # a torch tensor; torch is imported only by the .pt loader
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 if every array is float32, else float64 (the canonical logprob dtypes)."""
    f32 = all(a.dtype == np.float32 for a in arrays)
    return np.dtype(np.float32 if f32 else np.float64)


def pad_flat(
    values: np.ndarray,
    lengths: np.ndarray,
    fill: float = 0.0,
    dtype: Any = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Flattened ragged values + lengths -> right-padded ``(B, max(lengths))`` (vectorised).

    A boolean-mask assignment fills the valid cells in row-major order, which is exactly
    the order of the concatenated rows. ``valid`` is that ``(B, max(lengths))`` prefix mask,
    when the caller already has it.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    B = lengths.shape[0]
    Tm = int(lengths.max()) if B else 0
    dtype = dtype or (values.dtype if values.size else np.float64)
    out = np.zeros((B, Tm), dtype=dtype) if fill == 0 else np.full((B, Tm), fill, dtype=dtype)
    if values.size:
        if valid is None:
            valid = np.arange(Tm)[None, :] < lengths[:, None]
        out[valid] = values
    return out
