r"""The exchange format ``trm-oracle-instances/v1``: one reader, one writer, one record builder.

A file is one JSON object ``{"schema": "trm-oracle-instances/v1", "instances": [...]}``.
Each instance is an object with the fields of a tree instance
(:class:`trm_bounds.instances.tree.TreeInstance`, docs/theory.md §1):

- ``id`` (string), ``V`` (int ``>= 2``), ``T`` (int ``>= 1``), ``n_prompts`` (int ``>= 1``);
- ``p_x``: ``(n_prompts,)`` prompt distribution;
- ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)``, ``C = (V^T - 1)/(V - 1)``, contexts in the
  order ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + sum_{s<t} y_s V^(t-1-s)``;
- ``reward``: ``(n_prompts, V^T)`` in ``[0, 1]``, order ``seq(y) = sum_t y_t V^(T-t)``;
- optional ``expected``: the exact report of an engine, given to the writer (keys
  :data:`trm_bounds.report.EXPECTED_KEYS`; ``baseline_b`` records the baseline of
  ``L_baseline``); any other key is free metadata.

Non-finite numbers are written as the strings ``"inf"``, ``"-inf"``, ``"nan"``; floats are
written with full round-trip precision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.instances.tree import InstanceFormatError, TreeInstance, validate_instance
from trm_bounds.report import EXPECTED_KEYS
from trm_bounds.results import atomic_write_text, to_jsonable

__all__ = [
    "SCHEMA",
    "InstanceFormatError",
    "load_instances",
    "write_instances",
    "instance_record",
]

#: Schema string of the exchange format.
SCHEMA = "trm-oracle-instances/v1"

#: The fields every instance record carries.
FIELDS = ("id", "V", "T", "n_prompts", "p_x", "pi_roll", "pi_theta", "reward")

#: Largest ``V^T`` the reader accepts (the arrays of one prompt have ``V^T`` entries).
MAX_SEQUENCES = 10**8


def instance_record(
    id: str,
    pi_roll: ArrayLike,
    pi_theta: ArrayLike,
    reward: ArrayLike,
    p_x: ArrayLike,
    /,
    *,
    expected: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``trm-oracle-instances/v1`` instance as a JSON-ready dict, from arrays.

    ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)``; ``reward``: ``(n_prompts, V^T)``;
    ``p_x``: ``(n_prompts,)``.  ``V``, ``T`` and ``n_prompts`` come from the shapes.
    ``expected`` (an :class:`~trm_bounds.report.ExactReport` or a mapping with its keys) is
    stored restricted to :data:`~trm_bounds.report.EXPECTED_KEYS`; ``extra`` keys (``kind``,
    ``generator``, ...) are stored between the arrays and ``expected``; an extra key named
    like a field (e.g. ``reward``) is left out.

    >>> rec = instance_record("a", np.full((1, 3, 2), 0.5), np.full((1, 3, 2), 0.5),
    ...                       [[1.0, 0.0, 0.0, 1.0]], [1.0], kind="equal")
    >>> [rec[k] for k in ("V", "T", "n_prompts", "kind")]
    [2, 2, 1, 'equal']
    """
    pi_roll = np.asarray(pi_roll, np.float64)
    reward = np.asarray(reward, np.float64)
    n, _, V = pi_roll.shape
    T = int(round(np.log(reward.shape[1]) / np.log(V)))
    rec: dict[str, Any] = {
        "id": str(id),
        "V": int(V),
        "T": T,
        "n_prompts": int(n),
        "p_x": np.asarray(p_x, np.float64),
        "pi_roll": pi_roll,
        "pi_theta": np.asarray(pi_theta, np.float64),
        "reward": reward,
        **{k: v for k, v in extra.items() if k not in FIELDS and k != "expected"},
    }
    if expected is not None:
        rec["expected"] = {k: expected[k] for k in EXPECTED_KEYS if k in expected}
    return to_jsonable(rec)


def _tree_record(inst: TreeInstance, report: Callable[[TreeInstance], Any] | None) -> dict:
    return instance_record(
        inst.id, inst.pi_roll, inst.pi_theta, inst.reward, inst.p_x,
        expected=None if report is None else report(inst), **inst.meta,
    )  # fmt: skip


def write_instances(
    path: str | os.PathLike,
    instances: Iterable[TreeInstance | Mapping[str, Any]],
    *,
    report: Callable[[TreeInstance], Mapping[str, Any]] | None = None,
    compact: bool = False,
) -> Path:
    """Write instances as a ``trm-oracle-instances/v1`` JSON file, atomically.

    ``instances``: :class:`~trm_bounds.instances.tree.TreeInstance` objects (their ``meta``
    becomes extra keys) or records from :func:`instance_record` (written as they are).
    ``report``: a function of a tree instance whose result is stored as its ``expected``
    values, e.g. the tree engine's :func:`trm_bounds.engines.tree.exact_report` (the format
    runs no engine itself); ``None``: no expected values.  ``compact`` writes without spaces
    after separators.
    """
    records = [
        dict(item) if isinstance(item, Mapping) else _tree_record(item, report)
        for item in instances
    ]
    doc = to_jsonable({"schema": SCHEMA, "instances": records})
    text = json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc)
    return atomic_write_text(path, text + "\n")


def _instance_from_record(rec: Any, where: str) -> TreeInstance:
    """One instance from its JSON record; errors name ``where`` and the field."""
    if not isinstance(rec, dict):
        raise InstanceFormatError(f"{where}: must be a JSON object, got {type(rec).__name__}")
    for name in FIELDS:
        if name not in rec:
            raise InstanceFormatError(f"{where}: missing field {name!r}")
    for name in ("V", "T", "n_prompts"):
        if isinstance(rec[name], bool) or not isinstance(rec[name], int):
            raise InstanceFormatError(
                f"{where}: field {name!r}: must be an integer, got {rec[name]!r}"
            )
    arrays = {}
    for name in ("p_x", "pi_roll", "pi_theta", "reward"):
        try:
            arrays[name] = np.asarray(rec[name], dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InstanceFormatError(
                f"{where}: field {name!r}: not a rectangular array of numbers ({exc})"
            ) from None
    if rec["V"] >= 2 and rec["T"] >= 1 and rec["V"] ** rec["T"] > MAX_SEQUENCES:
        raise InstanceFormatError(f"{where}: field 'T': V^T = {rec['V']}^{rec['T']} too large")
    meta = {k: v for k, v in rec.items() if k not in FIELDS and k != "expected"}
    if "expected" in rec:
        meta["expected"] = rec["expected"]
    inst = TreeInstance.__new__(TreeInstance)
    inst.id, inst.V, inst.T, inst.n_prompts = str(rec["id"]), rec["V"], rec["T"], rec["n_prompts"]
    inst.p_x, inst.pi_roll = arrays["p_x"], arrays["pi_roll"]
    inst.pi_theta, inst.reward = arrays["pi_theta"], arrays["reward"]
    inst.meta = meta
    validate_instance(inst, where=where)
    return inst


def load_instances(path: str | os.PathLike) -> list[TreeInstance]:
    """Read a ``trm-oracle-instances/v1`` file; raise :class:`InstanceFormatError` if malformed.

    Each message names the file, the instance (index and id) and the field. Extra keys of an
    instance are kept in ``meta`` (an ``expected`` report under ``meta["expected"]``).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InstanceFormatError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InstanceFormatError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InstanceFormatError(f"{path}: top level must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise InstanceFormatError(
            f"{path}: field 'schema': got {doc.get('schema')!r}, expected {SCHEMA!r}"
        )
    records = doc.get("instances")
    if not isinstance(records, list):
        raise InstanceFormatError(f"{path}: field 'instances': must be a list")
    out = []
    for i, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, dict) else None
        out.append(_instance_from_record(rec, f"{path}: instance {i} (id {rid!r})"))
    return out
