"""The evaluator's output folder, written as one transaction (docs/theory.md §6).

Every writer of the evaluator (a report, a run step by step, a comparison) writes into a
private staging folder ``OUT/.evaluate.XXXX`` and :meth:`OutputFolder.commit` moves what it
holds into ``OUT`` only when everything succeeded, the named ``last`` file (``report.json``,
``run.json``, ``compare.json``) last, so a reader that sees it sees a complete output.
Anything else (an exception, Ctrl-C, SIGTERM turned into an exception by the command line)
removes the staging folder and every folder the transaction created: a failed run leaves
nothing behind. With ``overwrite`` the earlier outputs (the ``outputs`` patterns) are removed
up front, so none of them survives a failed run either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["OutputDirError", "OutputFolder", "STAGING_PREFIX"]

#: Name prefix of the staging folder inside ``OUT`` (ignored when ``OUT`` is checked empty).
STAGING_PREFIX = ".evaluate."


class OutputDirError(ValueError):
    """The output directory cannot be used; ``str(err)`` is one line naming the path."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"output directory {self.path}: {message}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputFolder:
    """``with OutputFolder(out, outputs, last=..., overwrite=...) as tmp: ...; commit()``.

    ``outputs``: glob patterns of what this writer puts into ``out`` (its files and folders).
    Raises :class:`OutputDirError` on entry when ``out`` is an existing file, lies under a
    file, cannot be created or written, or holds entries (other than staging folders) and
    ``overwrite`` is not set. :meth:`commit` must be called inside the ``with`` block; leaving
    it without a commit (an exception) removes everything the transaction made.
    """

    def __init__(self, out: str | os.PathLike, outputs: Sequence[str], *, last: str,
                 overwrite: bool = False) -> None:  # fmt: skip
        self.out = Path(out)
        self.outputs = tuple(outputs)
        self.last = last
        self.overwrite = overwrite
        self.tmp: Path | None = None
        self._created: list[Path] = []
        self._committed = False

    def __enter__(self) -> Path:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OutputDirError(out, "exists and is not a directory")
        if out.is_dir() and not self.overwrite:
            found = sorted(p.name for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX))
            if found:
                raise OutputDirError(
                    out, f"is not empty ({len(found)} entries, e.g. {found[0]}); pass --overwrite"
                )
        p = out
        while not p.exists():
            self._created.append(p)
            if p.parent == p:
                break
            p = p.parent
        self._created.reverse()
        if not p.is_dir():
            raise OutputDirError(out, f"{p} is not a directory")
        try:
            for d in self._created:
                d.mkdir()
            self.tmp = Path(tempfile.mkdtemp(dir=out, prefix=STAGING_PREFIX))
        except OSError as err:
            self._remove_created()
            raise OutputDirError(out, f"cannot be created or written ({err.strerror or err})"
                                 ) from None  # fmt: skip
        try:
            if self.overwrite:  # no output of an earlier run may survive a failed one
                for old in self._existing():
                    _remove(old)
        except BaseException:
            self._abort()
            raise
        return self.tmp

    def _existing(self) -> list[Path]:
        seen: dict[Path, None] = {}
        for pattern in self.outputs:
            for p in sorted(self.out.glob(pattern)):
                if not p.name.startswith(STAGING_PREFIX):
                    seen[p] = None
        return list(seen)

    def commit(self) -> None:
        """Move the staged entries into ``out`` with the user's umask, ``last`` last."""
        assert self.tmp is not None, "commit() outside the with block"
        mask = _umask()
        for root, dirs, files in os.walk(self.tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o777 & ~mask)  # mkdtemp creates 0700
            for f in files:
                os.chmod(os.path.join(root, f), 0o666 & ~mask)  # mkstemp creates 0600
        entries = sorted(self.tmp.iterdir(), key=lambda p: (p.name == self.last, p.name))
        for p in entries:
            dest = self.out / p.name
            if dest.is_dir() and not dest.is_symlink():
                _remove(dest)
            os.replace(p, dest)
        self._committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if not self._committed:
            self._remove_created()

    def _abort(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_created()

    def _remove_created(self) -> None:
        """Remove the directories this transaction created, deepest first, if empty."""
        for d in reversed(self._created):
            try:
                d.rmdir()
            except OSError:
                return


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)
