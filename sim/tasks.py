"""Seeds and block sizes, and the tasks a run is split into.

Replicates of a case are simulated in blocks of a fixed size that depends
only on the case (its number of categories), never on how the work is
scheduled.  Block ``b`` of case ``c`` draws from its own generator,

    numpy.random.SeedSequence(seed, spawn_key=(key(c), b)),

where ``key(c)`` is a hash of the case's *name*: adding, removing or
reordering other cases does not change a case's numbers.

A run is split into tasks of ``BLOCKS_PER_TASK`` (4) consecutive blocks of
one case.  Blocks and tasks depend only on the experiment, never on how many
workers run them, and results merge in task order, so serial,
``--workers N`` and ``--executor dask`` runs write byte-identical files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from .config import Experiment

#: Counts held in memory per block (rows × categories), which bounds a block's size.
BLOCK_CELLS = 1 << 21
#: Most replicates in one block.
MAX_BLOCK = 8192
#: Consecutive blocks of one case in a task (part of the resume fingerprint).
BLOCKS_PER_TASK = 4


def block_size(k_support: int) -> int:
    """Replicates per block for a case with ``k_support`` possible categories."""
    return max(1, min(MAX_BLOCK, BLOCK_CELLS // max(1, k_support)))


def rows_in_block(replicates: int, size: int, block: int) -> int:
    """Replicates in block ``block`` of blocks of ``size`` (a case's last block may be short)."""
    return min(replicates, (block + 1) * size) - block * size


def case_key(name: str) -> int:
    """A stable 64-bit key for a case name (part of its blocks' seeds)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def block_rng(seed: int, case: str, block: int) -> np.random.Generator:
    """The generator of one block of one case."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(case_key(case), block)))


@dataclass(frozen=True)
class Task:
    """Blocks ``first .. first + blocks − 1`` of case number ``case``."""

    case: int
    first: int
    blocks: int

    @property
    def key(self) -> str:
        """The task's name in a resume folder."""
        return f"task-{self.case:04d}-{self.first:08d}"


def plan(experiment: Experiment) -> list[Task]:
    """Every task of a convergence experiment, in merge order."""
    tasks = []
    for c, case in enumerate(experiment.cases):
        tasks += tasks_between(c, 0, experiment.replicates, block_size(case.pair.cells))
    return tasks


def tasks_between(case: int, start: int, stop: int, size: int) -> list[Task]:
    """The tasks making replicates ``start .. stop − 1`` of case number ``case`` (``start`` a whole
    number of blocks of ``size``), in order: a run with replicates chosen by precision
    (:mod:`sim.precision`) adds rounds of them."""
    first, blocks = start // size, math.ceil(stop / size)
    return [Task(case, b, min(BLOCKS_PER_TASK, blocks - b)) for b in range(first, blocks, BLOCKS_PER_TASK)]
