"""Results folders: reproducible file formats and atomic publication.

A run writes every file into a hidden temporary folder beside its target,
``<out>/.<name>.tmp-XXXX``, and renames it into place only when complete; an
existing folder of the same name is replaced only then.  A failing or
interrupted run therefore leaves either the previous results or none, never
a half-written folder.

Files are written so that the same data give the same bytes: CSVs with
``\\n`` line ends and shortest round-trip floats, gzip with no timestamp.

Why ISA-L's deflate at its level 2 (:data:`GZIP_LEVEL`, the ``isal``
package).  The text of a replicates table is mostly the digits of random
floats; on the benchmark's 300,000-row table (27.4 MB of text, one thread,
CPU seconds):

==============  ======  ==========  ======================
compressor      time    size        size against zlib 6
==============  ======  ==========  ======================
zlib level 1    0.36 s  12.82 MB    +6.7%
zlib level 2    0.46 s  12.74 MB    +6.0%
zlib level 4    0.81 s  12.30 MB    +2.4%
zlib level 6    2.16 s  12.01 MB
ISA-L level 2   0.11 s  12.42 MB    +3.4%
==============  ======  ==========  ======================

The baseline to beat 8-fold, pandas' ``to_csv`` then zlib level 6, takes
about 5 s of CPU here and formatting the text (orjson, below) about 0.25 s.
zlib's level 6 alone, even on two threads, would exceed that budget, and
its level 1 (its fastest: Huffman-only takes as long) costs as much as
formatting, which met 8x only with a core to spare (7-8x on this shared
machine).  ISA-L's level 2 costs a third of that for smaller files; on the
more repetitive shipped replicates it writes files 4-20% larger than zlib
level 6 (zlib level 1: 10-33%).  Its bytes may change with its version.
Changing the level changes the bytes of every ``.csv.gz``, never their text.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import struct
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
import pandas as pd
from isal import isal_zlib

from .errors import OutputError, RunError

CONFIG = "config.yaml"
ANALYTIC = "analytic.csv"
SUMMARY = "summary.csv"
REPLICATES = "replicates.csv.gz"
RUN = "run.json"
TRAJECTORY = "trajectory.csv"
FIGURES = "figures"
#: What the folder holds and every column means (sim.columns.folder_readme).
README = "README.md"


#: Rows formatted at once by :func:`write_csv`: bounds the text held in memory.
CHUNK_ROWS = 50_000
#: Bytes of text deflated as one piece by :class:`_ParallelGzip` (the gzip bytes depend on it).
DEFLATE_BLOCK = 1 << 20
#: The gzip level of ``.csv.gz`` files (the bytes depend on it; the text does not).
GZIP_LEVEL = 2
#: Threads compressing blocks.
_WORKERS = min(4, os.cpu_count() or 1)
#: Deflate's window: how far back a block's matches may reach into the text before it.
_WINDOW = 32 * 1024
#: Floats that orjson writes exactly as ``repr`` does (see :func:`_floats`): a check, not an assumption.
_PROBES = [0.0, -0.0, 1e-4, 0.1, 1 / 3, 2.5, -123456.0, 1e15, 9999999999999998.0, 2.0**53 + 2]
_ORJSON_IS_REPR = orjson.dumps(_PROBES) == ("[" + ",".join(map(repr, _PROBES)) + "]").encode()
#: What ends a row in :func:`_lines`.
_NEWLINE = orjson.Fragment(b"\n")
#: Strings written as they are by pandas (no quoting): names as configs allow them, units, families.
_PLAIN = re.compile(r"[A-Za-z0-9._+-]+")


def write_csv(frame: pd.DataFrame, path: Path, *, progress: Callable[[int], None] | None = None) -> None:
    """Write ``frame`` to ``path`` as CSV, gzip-compressed when it ends in ``.gz``.

    The text is what ``frame.to_csv(index=False, lineterminator="\\n")``
    gives, byte for byte, formatted :data:`CHUNK_ROWS` rows at a time (the
    text of a large table is never held whole); ``progress(rows)`` is called
    after each chunk.  A ``.gz`` file is one gzip member compressed at
    :data:`GZIP_LEVEL` in blocks of :data:`DEFLATE_BLOCK` bytes on several
    threads (see :class:`_ParallelGzip`): its bytes depend only on the text,
    never on the chunks or the threads' timing, so equal frames give equal bytes.
    """
    with open(path, "wb") as out, ThreadPoolExecutor(_WORKERS) as pool:
        gz = _ParallelGzip(out, pool) if path.name.endswith(".gz") else None
        for rows, data in _csv_chunks(frame):
            if gz is None:
                out.write(data)
            else:
                gz.write(data)
            if progress is not None:
                progress(rows)
        if gz is not None:
            gz.close()


class _ParallelGzip:
    """One gzip member whose deflate stream is compressed block by block on a thread pool.

    As pigz does: the text is cut into blocks of :data:`DEFLATE_BLOCK` bytes;
    each is deflated on its own, primed with the 32 KiB of text before it (so
    matches reach back as in one stream) and ended with a sync flush (so the
    pieces join into one valid stream); the last one ends the stream.  zlib
    releases the GIL, so blocks compress on other cores while the next chunk
    is formatted.  The header is the one :class:`gzip.GzipFile` writes with
    no file name and no time stamp; the trailer is the CRC-32 and length of
    the text.
    """

    def __init__(self, out: BinaryIO, pool: ThreadPoolExecutor) -> None:
        self._out, self._pool = out, pool
        self._pending: deque[Future[bytes]] = deque()
        self._text = bytearray()  # not yet compressed, less than one block
        self._window = b""  # the last 32 KiB of text already handed to a block
        self._crc, self._size = 0, 0
        xfl = b"\x04" if GZIP_LEVEL == 1 else b"\x02" if GZIP_LEVEL == 9 else b"\x00"
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + xfl + b"\xff")

    def write(self, data: bytes) -> None:
        """Add ``data`` to the text; compress every whole block it completes."""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._text += data
        start = 0
        while len(self._text) - start >= DEFLATE_BLOCK:
            self._submit(bytes(self._text[start : start + DEFLATE_BLOCK]), final=False)
            start += DEFLATE_BLOCK
        del self._text[:start]

    def close(self) -> None:
        """Compress what is left as the last block, write everything and the trailer."""
        self._submit(bytes(self._text), final=True)
        while self._pending:
            self._out.write(self._pending.popleft().result())
        self._out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def _submit(self, block: bytes, *, final: bool) -> None:
        while len(self._pending) > _WORKERS:  # bounded memory: write the oldest first
            self._out.write(self._pending.popleft().result())
        self._pending.append(self._pool.submit(_deflate, block, self._window, final))
        self._window = (self._window + block)[-_WINDOW:]


def _deflate(block: bytes, window: bytes, final: bool) -> bytes:
    """Raw deflate of ``block`` by ISA-L, primed with ``window``, ending the stream if ``final``."""
    args = (GZIP_LEVEL, isal_zlib.DEFLATED, -zlib.MAX_WBITS, 8, isal_zlib.Z_DEFAULT_STRATEGY)
    compressor = isal_zlib.compressobj(*args, window) if window else isal_zlib.compressobj(*args)
    return compressor.compress(block) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def _csv_chunks(frame: pd.DataFrame) -> Iterator[tuple[int, bytes]]:
    """(rows, CSV bytes) of ``frame`` in chunks, the header with the first."""
    fast = _formatters(frame)
    for start in range(0, max(len(frame), 1), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(frame))
        if fast is None:
            chunk = frame.iloc[start:stop].to_csv(index=False, header=start == 0, lineterminator="\n")
            yield stop - start, chunk.encode("utf-8")
            continue
        header = (",".join(frame.columns) + "\n").encode("utf-8") if start == 0 else b""
        yield stop - start, header + _lines([values(start, stop) for values in fast])


def _lines(columns: list[list]) -> bytes:
    """CSV lines of equally long columns of Python numbers and :class:`orjson.Fragment` texts.

    orjson writes one JSON array, in C, of the values row after row, each row
    followed by a newline fragment: ``[coin,0,1,0.5,\\n,coin,0,2,0.25,\\n]``.
    A fragment is written as it is (no quotes); the comma on either side of
    each newline then goes.  No value contains a newline (see :func:`_formatters`).
    """
    if not columns[0]:
        return b""
    width = len(columns) + 1
    flat = [_NEWLINE] * (len(columns[0]) * width)
    for i, column in enumerate(columns):
        flat[i::width] = column
    return orjson.dumps(flat)[1:-3].replace(b",\n,", b"\n") + b"\n"


def _formatters(frame: pd.DataFrame) -> list[Callable[[int, int], list]] | None:
    """Per column, ``values(start, stop)``: its rows start..stop for :func:`_lines`; None: pandas writes.

    Floats are written as their shortest round-trip repr (as pandas does), nan
    as the empty field; integers as decimals; strings as they are when they
    need no quoting.  Anything else (other dtypes, strings with commas or
    quotes, column names that need quoting, no columns) is left to pandas.
    """
    if len(frame.columns) == 0 or not all(isinstance(c, str) and _PLAIN.fullmatch(c) for c in frame.columns):
        return None
    out = [_formatter(frame[name]) for name in frame.columns]
    return None if None in out else out


def _formatter(column: pd.Series) -> Callable[[int, int], list] | None:
    """``values(start, stop)`` for one column (see :func:`_formatters`), or None."""
    values = column.to_numpy()
    if column.dtype == np.float64:
        return lambda start, stop: _floats(values[start:stop])
    if column.dtype == np.int64:
        return lambda start, stop: values[start:stop].tolist()
    if not pd.api.types.is_string_dtype(column.dtype):
        return None
    codes, distinct = pd.factorize(values)  # missing values: code -1
    if (codes < 0).any() or not all(isinstance(v, str) and _PLAIN.fullmatch(v) for v in distinct):
        return None
    fragments = np.array([orjson.Fragment(v) for v in distinct], dtype=object)  # written as they are
    return lambda start, stop: fragments[codes[start:stop]].tolist()


def _floats(values: np.ndarray) -> list[float | orjson.Fragment]:
    """The floats, each one orjson might write otherwise than ``repr`` as the fragment of its ``repr``.

    orjson (shortest round-trip digits, in C, ~20x faster than ``repr``)
    writes a float as ``repr`` does when it is 0 or 1e-4 <= |x| < 1e16, where
    both use plain decimals; outside, ``repr`` writes ``1e-05`` where orjson
    writes ``0.00001``, so those floats are formatted by ``repr`` here (one
    by one, as slow as before), nan as the empty field.
    :data:`_ORJSON_IS_REPR` checks the agreement when the module is loaded;
    without it every float is ``repr``'d.
    """
    out = values.tolist()
    magnitude = np.abs(values)
    plain = ((magnitude >= 1e-4) & (magnitude < 1e16)) | (values == 0)
    if not _ORJSON_IS_REPR:
        plain[:] = False
    for i in np.flatnonzero(~plain).tolist():
        value = out[i]
        out[i] = orjson.Fragment(repr(value) if value == value else "")
    return out


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
