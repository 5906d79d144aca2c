"""Command lines of the studies, built from each study's ``Args`` dataclass (cleanrl style).

Also the two things every study shares: where a result file goes by default
(:func:`default_out`) and a progress bar that needs no extra (:func:`progress`).

Every field of ``Args`` becomes a flag (``T_max`` -> ``--T-max``; tuples take several
values; booleans ``--x/--no-x``); each size preset of the study (``--tiny``, ``--full``, ...)
sets the fields it names, and a flag given explicitly wins over the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["parse_args", "apply_size", "default_out", "progress", "study_main"]

A = TypeVar("A")
T = TypeVar("T")


def _scalar(tp: Any) -> Any:
    """The argparse ``type`` for a field type (``X | None`` -> ``X``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(t for t in typing.get_args(tp) if t is not type(None))
    return tp


def apply_size(cls: type[A], sizes: Mapping[str, Mapping[str, Any]], size: str, **kw: Any) -> A:
    """``cls`` at the preset ``size`` (``"default"``: the field defaults), ``kw`` on top."""
    if size != "default" and size not in sizes:
        raise ValueError(f"size: {size!r} is not one of default, {', '.join(sizes)}")
    return cls(**{**sizes.get(size, {}), **kw, "size": size})


def parse_args(
    cls: type[A],
    argv: Sequence[str] | None,
    *,
    description: str,
    sizes: Mapping[str, Mapping[str, Any]],
    prog: str | None = None,
) -> A:
    """Parse ``argv`` into ``cls``; a ``ValueError`` from ``cls`` (its checks) is a usage error."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 argument_default=argparse.SUPPRESS)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "size":
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"(default: {default})"
        if tp is bool:
            ap.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_)
        elif typing.get_origin(tp) is tuple:
            ap.add_argument(flag, dest=f.name, nargs="+", type=typing.get_args(tp)[0],
                            help=help_)
        else:
            ap.add_argument(flag, dest=f.name, type=_scalar(tp), help=help_)
    group = ap.add_mutually_exclusive_group() if sizes else ap  # argparse: no empty group
    for name in sizes:
        group.add_argument(f"--{name}", dest="size", action="store_const", const=name,
                           help=f"preset: {', '.join(f'{k}={v}' for k, v in sizes[name].items())}")
    ns = vars(ap.parse_args(argv))
    size = ns.pop("size", "default")
    for k, v in ns.items():
        if isinstance(v, list):
            ns[k] = tuple(v)
    try:
        return apply_size(cls, sizes, size, **ns)
    except ValueError as exc:
        ap.error(str(exc))
    raise AssertionError  # pragma: no cover (ap.error exits)


def default_out(result: str) -> Path:
    """Default path of a result file: the checkout's ``experiments/results`` inside a source
    checkout, else ``./results`` (never inside the installed package)."""
    from trm_bounds.results import checkout_root

    root = checkout_root()
    base = root / "experiments" / "results" if root is not None else Path.cwd() / "results"
    return base / result


def progress(iterable: Iterable[T], **kw: Any) -> Iterable[T]:
    """``tqdm(iterable, **kw)`` on stderr when tqdm is installed, else ``iterable`` itself."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, file=sys.stderr, **kw)


def study_main(module: types.ModuleType, argv: Sequence[str] | None) -> int:
    """The command line of a study module: parse its ``Args`` (with its ``SIZES`` presets and
    the first line of its docstring as description), run ``produce`` and print the file."""
    doc = (module.__doc__ or "").split("\n")[0]
    args = parse_args(module.Args, argv, description=doc, sizes=module.SIZES)
    print(f"wrote {module.produce(args)}")
    return 0
