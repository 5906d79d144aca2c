r"""Pickled framework objects read without executing code and without the framework installed.

A restricted :class:`pickle.Unpickler` resolves a global only through an allow-list:

- framework containers are mapped onto plain stand-ins (:class:`StandIn`, a ``dict`` that
  records its constructor arguments and its pickled state), never imported:

  * SkyRL ``TrainingInputBatch`` / ``TensorBatch`` (``skyrl_train.training_batch``, and
    ``skyrl.backends.skyrl_train.training_batch`` in newer releases; NovaSky-AI/SkyRL,
    ``skyrl/backends/skyrl_train/training_batch.py``). Newer releases pickle through
    ``__reduce__`` = ``_rebuild_tensor_batch(cls, state)`` with ``state["batch_dict"]`` holding
    each tensor as ``{"format": "numpy", "data", "shape", "dtype"}`` or
    ``{"format": "torch", "data": torch.save bytes}``; older ones pickle the dict items plus a
    ``__getstate__`` of ``torch.save`` bytes. ``trainer.dump_data_batch=true`` writes it with
    ``TensorBatch.save`` (a plain ``pickle.dump``) to
    ``{export_path}/dumped_data/global_step_{N}_training_input.pkl`` (``skyrl/train/trainer.py``,
    ``dump_data``);
  * verl ``DataProto`` / ``DataProtoItem`` (volcengine/verl, ``verl/protocol.py``): its
    ``__getstate__`` is ``(batch_bytes, non_tensor_batch, meta_info)`` where ``batch_bytes`` is
    ``torch.save`` of the ``TensorDict``, or, with ``VERL_DATAPROTO_SERIALIZATION_METHOD=numpy``,
    ``(batch_size, device, {key: (dtype name, shape, uint8 bytes)})`` (decoded with numpy);
    ``save_to_disk`` is a plain ``pickle.dump``, and ``torch.save(data)`` wraps the same state;
  * tensordict ``TensorDict`` (pytorch/tensordict, ``tensordict/_reductions.py``): pickled
    as ``_make_td(TensorDict, state)`` with the tensors in ``state["_tensordict"]``, or, once
    consolidated (verl consolidates before ``torch.save``), as
    ``_rebuild_tensordict_files_consolidated(metadata, storage)``: one byte storage sliced per
    leaf, decoded here by slicing and viewing only;
- the few callables needed to rebuild tensors and arrays are allowed, each safe by itself:
  ``torch._utils._rebuild_tensor_v2``, ``torch.Size``, ``torch.device``, torch dtypes,
  ``collections.OrderedDict``, numpy's array reconstructors, and ``torch.storage._load_from_bytes``
  replaced by a ``torch.load(weights_only=True)`` of the bytes;
- everything else is refused with one line naming the global (:class:`PickleRefused`), before
  anything is called. No framework module is ever imported.

:func:`harvest` then walks the stand-ins and returns the batch dictionary (field name -> array)
that the readers of :mod:`trm_bounds.logs._batch_dict` understand.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.errors import LogFormatError

__all__ = ["PickleRefused", "StandIn", "restricted_loads", "load_pickled", "harvest"]

#: Framework classes mapped onto stand-ins: (module, name) -> label used in messages.
STAND_INS: dict[tuple[str, str], str] = {
    **{
        (mod, cls): f"SkyRL {cls}"
        for mod in ("skyrl_train.training_batch", "skyrl.backends.skyrl_train.training_batch")
        for cls in ("TrainingInputBatch", "TrainingOutputBatch", "TensorBatch", "TensorList")
    },
    ("verl.protocol", "DataProto"): "verl DataProto",
    ("verl.protocol", "DataProtoItem"): "verl DataProtoItem",
    **{
        (mod, "TensorDict"): "TensorDict"
        for mod in ("tensordict._td", "tensordict.tensordict", "tensordict")
    },
}

_SKYRL_REBUILD = {
    ("skyrl_train.training_batch", "_rebuild_tensor_batch"),
    ("skyrl.backends.skyrl_train.training_batch", "_rebuild_tensor_batch"),
}

#: The torch.save magic number that starts a legacy (non-zip) torch file.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


_TRUST_HINT = "pass --trust-pickle only if you trust this file"


class PickleRefused(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (nothing was called)."""


class StandIn(dict):
    """Plain stand-in for an allow-listed framework class: a dict (items set by the pickle)
    with the constructor arguments ``args`` and the pickled ``state``; no behaviour."""

    label = "object"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE cls(*args): record only
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __reduce__(self) -> Any:  # never re-pickled by us; refuse to be
        raise TypeError("stand-ins are not picklable")


_STAND_IN_TYPES: dict[tuple[str, str], type] = {
    key: type(key[1], (StandIn,), {"label": label, "__module__": __name__})
    for key, label in STAND_INS.items()
}


def _load_tensor_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes`` and SkyRL's ``torch`` format: weights-only load."""
    import re

    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # torch's weights-only refusal: name the global
        m = re.search(r"GLOBAL ([\w.]+)", str(err))
        name = m.group(1) if m else "an object"
        raise PickleRefused(f"refused global {name} (not on the allow-list)") from None


def _rebuild_skyrl(cls: type, state: Any) -> StandIn:
    """SkyRL ``_rebuild_tensor_batch(cls, state)`` and tensordict ``_make_td(cls, state)``:
    a stand-in holding ``state`` (``cls`` must itself be a stand-in)."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)):
        raise PickleRefused(f"refused rebuilding {cls!r}")
    obj = cls.__new__(cls)
    obj.state = state
    return obj


def _consolidated_td(metadata: dict, storage: Any) -> dict[str, Any]:
    """A consolidated ``TensorDict`` (tensordict ``_rebuild_tensordict_files_consolidated``:
    one byte storage, per leaf ``(dtype, shape, start, stop, pad[, ragged])``) -> a dict of
    tensors; sub-tensordicts nest as dicts. Only slicing and views of ``storage`` happen."""
    import torch

    out: dict[str, Any] = {}
    for key, leaf in metadata.get("leaves", {}).items():
        dtype_name, shape, start, stop, pad = leaf[:5]
        dtype = getattr(torch, str(dtype_name).removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype) or key.startswith("<NJT"):
            continue  # nested (jagged) tensors are not logprob fields
        value = storage[start:stop].view(dtype)
        n = int(np.prod(shape)) if len(shape) else 1
        out[key] = (value[:n] if pad else value).reshape(tuple(shape))
    for key, sub in metadata.items():
        if key not in ("leaves", "non_tensors", "cls", "cls_metadata", "size") and isinstance(
            sub, dict
        ):
            out[key] = _consolidated_td(sub, storage)
    return out


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import importlib

    import numpy.dtypes as npd

    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for pkg in ("numpy._core", "numpy.core"):
        for mod, names in (
            ("multiarray", ("_reconstruct", "scalar")),
            ("numeric", ("_frombuffer",)),
        ):
            try:
                m = importlib.import_module(f"numpy._core.{mod}")
            except ImportError:  # pragma: no cover - numpy 1.x
                m = importlib.import_module(f"numpy.core.{mod}")
            for name in names:
                if hasattr(m, name):
                    out[(f"{pkg}.{mod}", name)] = getattr(m, name)
    for name in dir(npd):  # numpy >= 1.25 pickles dtypes as numpy.dtypes.Float32DType etc.
        if name.endswith("DType"):
            out[("numpy.dtypes", name)] = getattr(npd, name)
    return out


def _torch_globals() -> dict[tuple[str, str], Any]:
    import collections

    import torch

    out: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch.storage", "_load_from_bytes"): _load_tensor_bytes,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            out[("torch", name)] = getattr(torch, name)
    return out


_ALLOWED: dict[tuple[str, str], Any] | None = None


def _allowed() -> dict[tuple[str, str], Any]:
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = {**_numpy_globals(), **_torch_globals(), **_STAND_IN_TYPES}
        for key in _SKYRL_REBUILD:
            _ALLOWED[key] = _rebuild_skyrl
        _ALLOWED[("tensordict._reductions", "_make_td")] = _rebuild_skyrl
        _ALLOWED[("tensordict._reductions", "_rebuild_tensordict_files_consolidated")] = (
            _consolidated_td
        )
        _ALLOWED[("builtins", "set")] = set
        _ALLOWED[("builtins", "frozenset")] = frozenset
        _ALLOWED[("builtins", "slice")] = slice
        _ALLOWED[("copyreg", "_reconstructor")] = _reconstructor
        _ALLOWED[("_codecs", "encode")] = _latin1
    return _ALLOWED


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes``: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise PickleRefused(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects), for stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)):
        raise PickleRefused(f"refused copyreg._reconstructor of {cls!r}")
    return cls.__new__(cls)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns allow-listed objects."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed().get((module, name))
        if obj is None:
            raise PickleRefused(f"refused global {module}.{name} (not on the allow-list)")
        return obj


class _RestrictedPickleModule:
    """The ``pickle_module`` handed to ``torch.load`` for zip files."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = "trm_bounds_restricted_pickle"

    @staticmethod
    def load(fh: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(fh, **kwargs).load()


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with the allow-list (torch zip files go through ``torch.load`` with the
    same unpickler). Raises :class:`PickleRefused` on any other global."""
    if data[:4] == b"PK\x03\x04" or data.startswith(LEGACY_TORCH_MAGIC):
        import torch

        return torch.load(
            io.BytesIO(data), map_location="cpu", weights_only=False,
            pickle_module=_RestrictedPickleModule,
        )  # fmt: skip
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_pickled(file: Path, *, trust_pickle: bool) -> Any:
    """Load a ``.pkl`` (or a pickle saved under another suffix) safely, or with
    ``trust_pickle`` by plain :mod:`pickle` / ``torch.load``; every failure is one line."""
    data = Path(file).read_bytes()
    if trust_pickle:
        try:
            if data[:4] == b"PK\x03\x04" or data.startswith(LEGACY_TORCH_MAGIC):
                import torch

                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
            return pickle.loads(data)  # noqa: S301 -- the user passed --trust-pickle
        except Exception as err:  # noqa: BLE001 -- any failure of foreign code is one line
            msg = str(err).splitlines()[0] if str(err) else ""
            raise LogFormatError(
                file, "file", None,
                f"--trust-pickle load failed: {type(err).__name__}: {msg}",
            ) from None  # fmt: skip
    try:
        return restricted_loads(data)
    except PickleRefused as err:
        raise LogFormatError(
            file, "file", None,
            f"{err}; {_TRUST_HINT}",
        ) from None  # fmt: skip
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError, zipfile.BadZipFile) as err:  # fmt: skip
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LogFormatError(file, "file", None, f"truncated or corrupt pickle ({msg})") from None


def _skyrl_tensor(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):  # older releases: torch.save bytes
        return _load_tensor_bytes(bytes(value))
    if not isinstance(value, dict):
        return value
    fmt = value.get("format")
    if fmt == "torch":
        return _load_tensor_bytes(value["data"])
    if fmt == "tensor_list":
        return [_skyrl_tensor(v) for v in value["items"]]
    if fmt != "numpy":
        raise ValueError(f"unknown format {fmt!r}")
    arr = np.frombuffer(value["data"], dtype=np.dtype(value["dtype"]))
    return arr.reshape(tuple(value["shape"]))


def _tensordict_items(td: StandIn) -> dict[str, Any]:
    out = dict(td)
    st = td.state
    if isinstance(st, dict):
        inner = st.get("_tensordict", st.get("_dict_values"))
        if isinstance(inner, dict):
            out.update({k: (_tensordict_items(v) if isinstance(v, StandIn) else v)
                        for k, v in inner.items()})  # fmt: skip
    for a in td.args:
        if isinstance(a, dict):
            out.update(a)
    return out


def _is_numpy_serialized(raw: Any) -> bool:
    """verl's ``serialize_tensordict``: ``(batch_size, device, {key: encoded tensor})``."""
    return (
        isinstance(raw, tuple) and len(raw) == 3 and isinstance(raw[2], dict)
        and (raw[1] is None or isinstance(raw[1], str))
    )  # fmt: skip


#: torch dtype names of verl's numpy serialization -> numpy dtypes (bfloat16: see below).
_TORCH_TO_NUMPY = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16, "int64": np.int64,
    "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}  # fmt: skip


def _numpy_tensordict(raw: tuple, file: Path, label: str) -> dict[str, np.ndarray]:
    """Decode verl's numpy serialization of a ``TensorDict`` (volcengine/verl
    ``verl/protocol.py``, ``serialize_single_tensor``: each tensor is ``(dtype name, shape,
    raw bytes as a uint8 array)``; a nested tensor is ``(layout, [encoded tensors])``, not a
    logprob field, and is left out). ``bfloat16`` becomes float32 exactly (its 16 bits are the
    high half of a float32)."""
    out: dict[str, np.ndarray] = {}
    for key, enc in raw[2].items():
        if not (isinstance(enc, tuple) and len(enc) == 3):
            continue  # nested (jagged) tensor
        dtype, shape, data = enc
        try:
            buf = np.asarray(data, dtype=np.uint8).reshape(-1)
            shape = tuple(int(n) for n in shape)
            if dtype == "bfloat16":
                hi = buf.view(np.uint16).astype(np.uint32) << 16
                arr = hi.view(np.float32)
            else:
                arr = buf.view(_TORCH_TO_NUMPY[str(dtype)])
            out[str(key)] = arr.reshape(shape)
        except (KeyError, ValueError, TypeError) as err:
            raise LogFormatError(
                file, "file", str(key), f"{label} numpy-serialized tensor unreadable ({err})"
            ) from None
    return out


def harvest(obj: Any, file: Path) -> Any:
    """The batch dictionary inside an unpickled object: SkyRL batches, verl ``DataProto``
    (tensor batch merged with ``non_tensor_batch``), ``TensorDict``; other objects unchanged.
    Nested payloads (tensor bytes) go through the same allow-list; a refusal is one line."""
    try:
        return _harvest(obj, file)
    except PickleRefused as err:
        raise LogFormatError(file, "file", None, f"{err}; {_TRUST_HINT}") from None


def _harvest(obj: Any, file: Path) -> Any:
    if not isinstance(obj, StandIn):
        return obj
    label = type(obj).label
    if label.startswith("SkyRL"):
        if obj.state is not None and not isinstance(obj.state, dict):
            raise LogFormatError(
                file, "file", None,
                f"{label}: pickled state is a {type(obj.state).__name__}, not a dict",
            )  # fmt: skip
        st = obj.state or {}
        bd = st.get("batch_dict")
        if bd is not None and not isinstance(bd, dict):
            raise LogFormatError(
                file, "file", "batch_dict", f"{label}: a {type(bd).__name__}, not a dict"
            )
        d = dict(obj)
        for k, v in (bd or {}).items():
            if v is None:
                continue
            try:
                d[k] = _skyrl_tensor(v)
            except PickleRefused:
                raise
            except (KeyError, ValueError, TypeError, AttributeError, IndexError,
                    RuntimeError, EOFError, pickle.UnpicklingError) as err:  # fmt: skip
                what = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                raise LogFormatError(
                    file, "file", str(k), f"{label}: malformed serialized tensor ({what})"
                ) from None
        return {k: v for k, v in d.items() if v is not None}
    if label.startswith("verl"):
        st = obj.state
        if isinstance(st, tuple) and len(st) == 3:
            raw, non_tensor, _meta = st
        elif isinstance(st, dict):
            raw, non_tensor = st.get("batch"), st.get("non_tensor_batch")
        else:
            raise LogFormatError(file, "file", None, f"{label}: unrecognised pickled state")
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = restricted_loads(bytes(raw))
            except PickleRefused as err:
                raise LogFormatError(
                    file, "file", "batch", f"{label} batch: {err}; {_TRUST_HINT}"
                ) from None
        elif _is_numpy_serialized(raw):  # VERL_DATAPROTO_SERIALIZATION_METHOD=numpy
            raw = _numpy_tensordict(raw, file, label)
        d = _harvest(raw, file) if raw is not None else {}
        d = dict(d) if isinstance(d, dict) else {}
        if isinstance(non_tensor, dict):
            d.update(non_tensor)
        return d
    return _tensordict_items(obj)
