"""Results folders: reproducible file formats and atomic publication.

A run writes every file into a hidden temporary folder beside its target,
``<out>/.<name>.tmp-XXXX``, and renames it into place only when complete; an
existing folder of the same name is replaced only then.  A failing or
interrupted run therefore leaves either the previous results or none, never
a half-written folder.

Files are written so that the same data give the same bytes: CSVs with
``\\n`` line ends and shortest round-trip floats, gzip with no timestamp.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import OutputError, RunError

CONFIG = "config.yaml"
ANALYTIC = "analytic.csv"
SUMMARY = "summary.csv"
REPLICATES = "replicates.csv.gz"
RUN = "run.json"
TRAJECTORY = "trajectory.csv"
FIGURES = "figures"


#: Rows formatted at once by :func:`write_csv`: bounds the text held in memory.
CHUNK_ROWS = 50_000
#: Strings written as they are by pandas (no quoting): names as configs allow them, units, families.
_PLAIN = re.compile(r"[A-Za-z0-9._+-]+")


def write_csv(frame: pd.DataFrame, path: Path, *, progress: Callable[[int], None] | None = None) -> None:
    """Write ``frame`` to ``path`` as CSV, gzip-compressed when it ends in ``.gz``.

    The text is what ``frame.to_csv(index=False, lineterminator="\\n")``
    gives, byte for byte, formatted :data:`CHUNK_ROWS` rows at a time (the
    text of a large table is never held whole) while the previous chunk is
    compressed on another thread; ``progress(rows)`` is called after each
    chunk.  The gzip header carries no file name and no time stamp, and
    deflate's output does not depend on how its input is split, so equal
    frames give equal bytes.
    """
    chunks = _csv_chunks(frame)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(path, "wb"))
        if path.name.endswith(".gz"):
            out = stack.enter_context(
                gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
            )
        compressor = stack.enter_context(ThreadPoolExecutor(1))  # zlib releases the GIL
        pending = None
        for rows, data in chunks:
            if pending is not None:
                pending.result()  # in order, at most one chunk waiting
            pending = compressor.submit(out.write, data)
            if progress is not None:
                progress(rows)
        if pending is not None:
            pending.result()


def _csv_chunks(frame: pd.DataFrame) -> Iterator[tuple[int, bytes]]:
    """(rows, CSV bytes) of ``frame`` in chunks, the header with the first."""
    fast = _formatters(frame)
    for start in range(0, max(len(frame), 1), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        if fast is None:
            text = chunk.to_csv(index=False, header=start == 0, lineterminator="\n")
        else:
            columns = [fmt(chunk[name].to_numpy()) for name, fmt in zip(frame.columns, fast, strict=True)]
            body = "".join(map(_line, zip(*columns, strict=True))) if len(chunk) else ""
            text = (",".join(frame.columns) + "\n" if start == 0 else "") + body
        yield len(chunk), text.encode("utf-8")


def _line(fields: tuple[str, ...]) -> str:
    return ",".join(fields) + "\n"


def _formatters(frame: pd.DataFrame) -> list[Callable[[np.ndarray], list[str]]] | None:
    """Per column, a formatter giving pandas' text for it; None when some column needs pandas itself.

    Floats are written as their shortest round-trip repr (as pandas does), nan
    as the empty field; integers as decimals; strings as they are when they
    need no quoting.  Anything else (other dtypes, strings with commas or
    quotes, column names that need quoting) is left to pandas.
    """
    if not all(isinstance(c, str) and _PLAIN.fullmatch(c) for c in frame.columns):
        return None
    out = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == np.float64:
            out.append(_floats)
        elif column.dtype == np.int64:
            out.append(_integers)
        elif pd.api.types.is_string_dtype(column.dtype) and all(
            isinstance(v, str) and _PLAIN.fullmatch(v) for v in column.unique()
        ):
            out.append(_strings)
        else:
            return None
    return out


def _floats(values: np.ndarray) -> list[str]:
    text = list(map(float.__repr__, values.tolist()))
    for i in np.flatnonzero(np.isnan(values)).tolist():
        text[i] = ""
    return text


def _integers(values: np.ndarray) -> list[str]:
    return list(map(int.__repr__, values.tolist()))


def _strings(values: np.ndarray) -> list[str]:
    return values.tolist()


def write_json(obj: dict, path: Path) -> None:
    """Write ``obj`` as indented JSON."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def prepare_output(out: Path) -> Path:
    """Create ``out`` if needed and check that a run can write into it.

    Raises
    ------
    sim.errors.OutputError
        When ``out`` is not a folder or cannot be written.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except FileExistsError:
        raise OutputError(f"{out}: exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"{out}: cannot write results here ({exc.strerror})") from None
    return out


@contextlib.contextmanager
def exclusive(out: Path, name: str) -> Iterator[None]:
    """Hold the lock of results folder ``out/name`` for a whole run.

    The lock is an advisory ``flock`` on ``out/.<name>.lock``, released by the
    operating system even when the process is killed.  Holding it, leftovers
    of a run that was killed outright (SIGKILL, power loss) are cleaned up
    first: its temporary folder is removed, and if it died between moving the
    previous results aside and moving the new ones in, the previous results
    are put back.

    Raises
    ------
    sim.errors.RunError
        If another run holds the lock.
    sim.errors.OutputError
        If the lock file cannot be created in ``out``.
    """
    try:
        lock = open(Path(out) / f".{name}.lock", "a+", encoding="utf-8")  # noqa: SIM115 (a with below)
    except OSError as exc:
        raise OutputError(f"{Path(out) / name}: cannot take the results lock: {exc.strerror}") from None
    with lock as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{Path(out) / name}: another sim run is writing these results right now; "
                "wait for it to finish, or write elsewhere with --out"
            ) from None
        try:
            _recover(Path(out), name)
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _recover(out: Path, name: str) -> None:
    """Undo what a killed run left behind (call only while holding the lock)."""
    final = out / name
    for old in sorted(out.glob(f".{name}.old-*")):
        if not final.exists() and (old / name).is_dir():
            os.rename(old / name, final)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in out.glob(f".{name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(out: Path, name: str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes ``out/name``.

    The temporary folder is removed if the block raises (including
    ``KeyboardInterrupt``), so nothing partial is ever left behind.
    """
    final = Path(out) / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; results are ordinary files
    try:
        yield tmp
        _replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``, replacing an existing folder only at the end."""
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise OutputError(f"{final}: exists and is not a results folder")
    if not final.exists():
        os.rename(new, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    os.rename(final, old / final.name)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old / final.name, final)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv` (gzip by extension)."""
    return pd.read_csv(path, keep_default_na=True)
