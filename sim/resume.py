"""The resume folder: finished tasks of an interrupted run, kept for ``--resume``.

Each finished task is stored atomically in ``<out>/.<name>.resume/`` beside a
fingerprint of the resolved config, the sim version, the kind of results and
the tasks' size; ``sim run --resume`` loads the finished tasks and runs the
rest, refusing if the fingerprint differs.  A successful run removes the folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ConfigError, ConfigIssue
from .tasks import BLOCKS_PER_TASK, Task


def fingerprint(config_text: str, mode: str) -> str:
    """What must match for a run to resume another: sim version, ``mode``, task size and config."""
    digest = hashlib.sha256(f"{__version__}\n{mode}\n{BLOCKS_PER_TASK}\n{config_text}".encode()).hexdigest()
    return digest


@dataclass(frozen=True)
class ResumeStore:
    """Finished tasks of an interrupted run, in ``folder``, stamped with ``stamp``.

    Constructing one touches nothing on disk; :meth:`open` prepares the folder.
    """

    folder: Path
    stamp: str

    @classmethod
    def open(cls, out: Path, name: str, stamp: str, *, resume: bool) -> ResumeStore:
        """The store of experiment ``name`` in ``<out>/.<name>.resume/``, ready to save tasks.

        With ``resume``, tasks an interrupted run left there are kept, provided
        its fingerprint equals ``stamp``; otherwise the folder starts empty.

        Raises
        ------
        sim.errors.ConfigError
            With ``resume``, if the folder's fingerprint differs from ``stamp``.
        """
        store = cls(Path(out) / f".{name}.resume", stamp)
        if resume and store.folder.is_dir():
            store._check_stamp()
        else:
            store.discard()
        store.folder.mkdir(parents=True, exist_ok=True)
        store._stamp_file.write_text(stamp)
        return store

    @property
    def _stamp_file(self) -> Path:
        return self.folder / "fingerprint"

    def _check_stamp(self) -> None:
        if not self._stamp_file.is_file() or self._stamp_file.read_text() != self.stamp:
            raise ConfigError(
                [
                    ConfigIssue(
                        str(self.folder),
                        None,
                        "",
                        "refusing to resume: the config (or sim version) differs from the interrupted "
                        "run's; run without --resume to start afresh",
                    )
                ]
            )

    def load(self, task: Task) -> dict[str, np.ndarray] | None:
        """The arrays of a stored task, or None if it is not stored."""
        path = self.folder / f"{task.key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(self, task: Task, arrays: dict[str, np.ndarray]) -> None:
        """Store a finished task atomically, as an ``.npz`` that :func:`numpy.load` reads.

        Deflate at level 1, not numpy's default 6: the histograms of small
        counts shrink about as much, at a third of the cost on the process
        that merges every task.
        """
        tmp = self.folder / f".{task.key}.tmp.npz"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
        os.replace(tmp, self.folder / f"{task.key}.npz")

    def discard(self) -> None:
        """Remove the folder and every task in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
