"""Writing results: chunked CSVs equal to whole ones, progress for long writes, large files announced."""

from __future__ import annotations

import gzip
import io
import time
import zlib

import numpy as np
import orjson
import pandas as pd
import pytest

import sim.results as res
import sim.runner
from sim.config import parse_config
from sim.progress import Progress
from tests.helpers import TINY


def _table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "case": np.where(np.arange(rows) % 3 == 0, "coin", "die"),
            "replicate": np.arange(rows, dtype=np.int64),
            "n": np.tile(np.array([1, 10, 10**12], dtype=np.int64), rows // 3 + 1)[:rows],
            # values with long shortest representations, tiny and huge magnitudes, and a nan
            "llr": np.concatenate([rng.normal(size=rows - 3), [1e-300, 3.0e300, np.nan]]),
        }
    )


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_a_chunked_write_gives_the_text_of_a_whole_one(tmp_path, monkeypatch, name):
    frame = _table(1000)
    whole = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    monkeypatch.setattr(res, "CHUNK_ROWS", 77)  # 13 chunks, the last one short
    done = []
    res.write_csv(frame, tmp_path / name, progress=done.append)
    data = (tmp_path / name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)  # checks the CRC-32 and the length too
    assert data == whole
    assert sum(done) == len(frame) and len(done) == 13
    back = pd.read_csv(tmp_path / name)
    np.testing.assert_array_equal(back.llr.to_numpy(), frame.llr.to_numpy())  # same float64, nan included


def _deflated(path):
    """The text of a gzip file read as ONE member by zlib, and the header's first 10 bytes."""
    data = path.read_bytes()
    stream = zlib.decompressobj(wbits=31)
    text = stream.decompress(data)
    assert stream.eof and stream.unused_data == b""  # one member, nothing after it
    return text, data[:10]


def test_a_gzip_file_is_one_member_of_blocks_whatever_the_chunks_and_the_threads(tmp_path, monkeypatch):
    """The bytes depend on the text only: not on the chunks, the number of threads or their timing."""
    frame = _table(2000)
    whole = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    monkeypatch.setattr(res, "DEFLATE_BLOCK", 1000)  # ~80 blocks, each smaller than deflate's window
    res.write_csv(frame, tmp_path / "a.csv.gz")
    text, header = _deflated(tmp_path / "a.csv.gz")
    assert text == whole
    empty = io.BytesIO()  # the header gzip itself writes with no name and no time stamp
    with gzip.GzipFile(filename="", mode="wb", fileobj=empty, mtime=0, compresslevel=res.GZIP_LEVEL):
        pass
    assert header == empty.getvalue()[:10]
    assert pd.read_csv(tmp_path / "a.csv.gz").equals(pd.read_csv(io.BytesIO(whole)))

    deflate, rng = res._deflate, np.random.default_rng(5)

    def late(*args):
        time.sleep(rng.uniform(0, 0.003))  # blocks finish out of order
        return deflate(*args)

    monkeypatch.setattr(res, "_deflate", late)
    for chunk_rows, workers in ((77, 1), (1, 3), (5000, 4)):
        monkeypatch.setattr(res, "CHUNK_ROWS", chunk_rows)
        monkeypatch.setattr(res, "_WORKERS", workers)
        res.write_csv(frame, tmp_path / "b.csv.gz")
        assert (tmp_path / "b.csv.gz").read_bytes() == (tmp_path / "a.csv.gz").read_bytes()
    monkeypatch.setattr(res, "DEFLATE_BLOCK", 50_000)  # other blocks: other bytes, the same text
    res.write_csv(frame, tmp_path / "c.csv.gz")
    assert _deflated(tmp_path / "c.csv.gz")[0] == whole


def test_an_empty_table_is_its_header(tmp_path):
    res.write_csv(_table(6).iloc[:0], tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text() == "case,replicate,n,llr\n"
    res.write_csv(_table(6).iloc[:0], tmp_path / "e.csv.gz")
    assert _deflated(tmp_path / "e.csv.gz")[0] == b"case,replicate,n,llr\n"


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_write_shows_progress_only_once_it_has_lasted():
    quick, slow = _Tty(), _Tty()
    for stream, lasted in ((quick, 0.0), (slow, 5.0)):
        bar = Progress(100, "x: writing r.csv.gz", stream=stream, unit="rows", delay=2.0, final=False)
        bar.start -= lasted
        for _ in range(4):
            bar.update(25)
        bar.close()
    assert quick.getvalue() == ""  # a quick write draws nothing, not even its last line
    assert "x: writing r.csv.gz" in slow.getvalue() and "100/100 rows" in slow.getvalue()


def test_a_run_shows_its_write_progress_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(sim.runner, "WRITE_PROGRESS_DELAY", 0.0)
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    sim.runner.run_experiment(parse_config(TINY), tmp_path)
    rows = 50 * 3 * 2  # replicates × sizes × cases
    assert "tiny: writing replicates.csv.gz [" in tty.getvalue()
    assert f"{rows}/{rows} rows" in tty.getvalue()


def test_a_large_replicates_file_is_announced_with_the_way_to_avoid_it():
    big = parse_config(TINY.replace("replicates: 50", "replicates: 10000000"))
    note = sim.runner.replicates_note(big)
    # 10⁷ replicates × 3 sizes × 2 cases rows, 4 estimators, ~10 bytes a value
    assert note == (
        "replicates.csv.gz will hold 60,000,000 rows, about 2,400 MB; "
        "save_replicates: false keeps the summaries without it"
    )
    assert sim.runner.replicates_note(parse_config(TINY)) is None
    assert (
        sim.runner.replicates_note(
            parse_config(TINY.replace("replicates: 50", "replicates: 10000000") + "save_replicates: false\n")
        )
        is None
    )


def test_sim_run_prints_the_note_before_running(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(sim.runner, "LARGE_REPLICATES", 1000)  # TINY's 300 rows × 4 values × 10 bytes
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    r = cli("run", str(config), "--out", str(tmp_path / "out"), "--no-figures")
    assert r.exit_code == 0
    first = r.stderr.splitlines()[0]
    assert first.startswith("tiny: note: replicates.csv.gz will hold 300 rows, about ")
    assert first.endswith("; save_replicates: false keeps the summaries without it")


@pytest.mark.parametrize("orjson_is_repr", [True, False])
def test_the_fast_formatting_is_pandas_text_byte_for_byte(tmp_path, monkeypatch, orjson_is_repr):
    """Shortest reprs at every magnitude, signed zeros, nan, infinities, subnormals; strings and ints.

    With ``orjson_is_repr`` False every float takes the ``repr`` path, as it
    would with an orjson that wrote floats otherwise.
    """
    monkeypatch.setattr(res, "_ORJSON_IS_REPR", orjson_is_repr)
    rng = np.random.default_rng(11)
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e15, 9999999999999998.0, 1e-5, 1e-4, 0.1, 1 / 3]
    special += [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e-300, 1e21, 1e22]
    # either side of where repr changes notation (and orjson elsewhere), and short decimals
    special += [np.nextafter(1e-4, 0), np.nextafter(1e-4, 1), np.nextafter(1e16, 0), -1e-5, 1.5e-7, 1e-10]
    special += [2.0**53 + 2, 0.1 + 0.2, 123456789012345.6, -2.5, 1e-6, 9.5e-5, 3e-5, 0.00012]
    rows = 6000
    values = np.concatenate(
        [
            special,
            rng.normal(size=rows // 2) * 10.0 ** rng.integers(-300, 300, size=rows // 2),
            rng.normal(size=rows // 2) * 10.0 ** rng.integers(-7, 18, size=rows // 2),
        ]
    )[:rows]
    replicate = np.arange(rows, dtype=np.int64) - 5
    replicate[:2] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    frame = pd.DataFrame(
        {
            "case": np.where(np.arange(rows) % 2 == 0, "coin", "die_2.x-y"),
            "replicate": replicate,
            "n": np.arange(rows, dtype=np.int64) * 10**12,
            "llr": values,
            "entropy": rng.permutation(values),
        }
    )
    assert res._formatters(frame) is not None  # the fast path is the one tested
    res.write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == frame.to_csv(index=False, lineterminator="\n").encode()
    # what the fast path cannot write as pandas does is left to pandas
    quoted = frame.assign(case=np.where(np.arange(rows) % 2 == 0, "a,b", 'say "hi"'))
    assert res._formatters(quoted) is None
    res.write_csv(quoted, tmp_path / "q.csv")
    assert (tmp_path / "q.csv").read_bytes() == quoted.to_csv(index=False, lineterminator="\n").encode()


def test_orjson_writes_the_floats_it_is_given_as_repr_does():
    """The agreement the fast path relies on, against ``repr`` itself, over the range it is used in."""
    assert res._ORJSON_IS_REPR
    rng = np.random.default_rng(12)
    exponent = rng.integers(1023 - 14, 1023 + 54, size=200_000, dtype=np.uint64)  # 2^-14 ≈ 6e-5 .. 2^54
    bits = (exponent << np.uint64(52)) | rng.integers(0, 2**52, size=200_000, dtype=np.uint64)
    values = bits.view(np.float64) * rng.choice([-1.0, 1.0], size=200_000)
    short = np.rint(rng.uniform(1, 1e9, size=100_000)) / 10.0 ** rng.integers(0, 13, size=100_000)
    for x in (values, short):
        out = res._floats(x)
        given = [v for v in out if isinstance(v, float)]
        assert len(given) > 0.9 * len(x)  # most go to orjson
        assert orjson.dumps(given) == ("[" + ",".join(map(repr, given)) + "]").encode()
