"""Command lines of the studies, built from each study's ``Args`` dataclass (cleanrl style).

Also the two things every study shares: where a result file goes by default
(:func:`default_out`) and a progress bar that needs no extra (:func:`progress`).

Every field of ``Args`` becomes a flag (``T_max`` -> ``--T-max``; tuples take several
values; booleans ``--x/--no-x``) whose help is the comment after the field; each size preset
of the study (``--tiny``, ``--full``, ...) sets the fields it names, and a flag given
explicitly wins over the preset.

``--out DIR`` is a folder, as for every other command: the study writes its result file
(the module's ``RESULT``, e.g. ``DIR/worst_case.json``; ``DIR/demo_eval/`` for the log
evaluator's report) and any file it exports (``INSTANCES``) there.  A value ending in
``.json`` is still taken as the result file itself (the form before version 0.2).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from trm_bounds.results import default_result_path

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


def field_help(cls: type) -> dict[str, str]:
    """The comment on the lines of each field of the dataclass ``cls`` (``x: int = 3  # the
    help``; formatter pragmas such as ``# fmt: skip`` are not help)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (frozen application): no per-field help
        return {}
    body = ast.parse(source).body[0]
    spans = {n.target.id: (n.lineno, n.end_lineno) for n in getattr(body, "body", [])
             if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}  # fmt: skip
    out: dict[str, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = tok.string.lstrip("#").strip()
        if tok.type != tokenize.COMMENT or text.startswith(("fmt:", "noqa", "type:")):
            continue
        for name, (a, b) in spans.items():
            if a <= tok.start[0] <= b:
                out[name] = f"{out[name]} {text}" if name in out else text
    return out


def plain(text: str) -> str:
    """``text`` without reST markup (help screens are plain text): ````x```` and
    ``:role:`x``` become ``x``.

    >>> plain("How tight are the bounds in ``T``? See :func:`trm_bounds.bounds.linear`.")
    'How tight are the bounds in T? See trm_bounds.bounds.linear.'
    """
    return re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")


def _out_value(module: types.ModuleType | None, value: str) -> dict[str, str]:
    """``--out DIR`` as the ``Args`` fields it sets (module docstring); a ``.json`` value is
    the result file itself."""
    result = getattr(module, "RESULT", None)
    if result is None or value.endswith(".json"):
        return {"out": value}
    folder = Path(value)
    out = folder / result
    kw = {"out": str(out.parent if "/" in result else out)}  # demo_eval/: a report folder
    if hasattr(module, "INSTANCES") and "instances_out" in getattr(module.Args, "__annotations__", {}):
        kw["instances_out"] = str(folder / module.INSTANCES)
    return kw


def parse_args(
    cls: type[A],
    argv: Sequence[str] | None,
    *,
    description: str,
    sizes: Mapping[str, Mapping[str, Any]],
    prog: str | None = None,
) -> A:
    """Parse ``argv`` into ``cls``; a ``ValueError`` from ``cls`` (its checks) is a usage error.

    Each flag's help is the comment after its field (:func:`field_help`) and its default;
    ``--out`` is a folder (module docstring).
    """
    ap = argparse.ArgumentParser(prog=prog, description=plain(description),
                                 argument_default=argparse.SUPPRESS)
    module = sys.modules.get(cls.__module__)
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name == "size":
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = plain(helps.get(f.name, ""))
        if f.name == "out" and getattr(module, "RESULT", None) is not None:
            result = module.RESULT
            home = default_result_path(result).parents[len(Path(result).parts) - 1]
            text = f"output folder: writes {result} there (default: {home})"
            default = None
        help_ = f"{text} (default: {default})" if default is not None else (text or None)
        if tp is bool:
            ap.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_)
        elif typing.get_origin(tp) is tuple:
            ap.add_argument(flag, dest=f.name, nargs="+", type=typing.get_args(tp)[0],
                            help=help_)
        else:
            ap.add_argument(flag, dest=f.name, type=_scalar(tp), help=help_,
                            metavar="DIR" if f.name == "out" else None)
    group = ap.add_mutually_exclusive_group() if sizes else ap  # argparse: no empty group
    for name in sizes:
        group.add_argument(f"--{name}", dest="size", action="store_const", const=name,
                           help=f"preset: {', '.join(f'{k}={v}' for k, v in sizes[name].items())}")
    ns = vars(ap.parse_args(argv))
    size = ns.pop("size", "default")
    for k, v in ns.items():
        if isinstance(v, list):
            ns[k] = tuple(v)
    if ns.get("out") is not None:
        ns = {**_out_value(module, ns.pop("out")), **ns}
    try:
        return apply_size(cls, sizes, size, **ns)
    except ValueError as exc:
        ap.error(str(exc))
    raise AssertionError  # pragma: no cover (ap.error exits)


def default_out(result: str) -> Path:
    """Default path of a result file (:func:`trm_bounds.results.default_result_path`): in a
    source checkout ``trm_bounds/data/results`` for the files the figures read, else
    ``experiments/results``; outside a checkout ``./results`` (never inside the package)."""
    return default_result_path(result)


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
