"""Config loading: the documented keys, defaults, overrides, and every class of bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sim.config import (
    DEFAULT_POINTS,
    ESTIMATORS,
    checkpoint_grid,
    dump_config,
    load_all,
    load_config,
    parse_config,
)
from sim.errors import ConfigError

ISSUE_EXAMPLE = """
name: coin-demo            # required
seed: 2026                 # optional, default 0
replicates: 2000           # optional, default 1000
units: nats                # nats (default) | bits
n: {min: 1, max: 1000000, points: 25}
estimators: [llr, cross_entropy, entropy, plugin_kl]
sampler: counts
cases:
  - name: fair-vs-biased
    p: 0.5
    q: 0.8
  - name: die
    p: [0.1, 0.2, 0.3, 0.4]
    q: [0.25, 0.25, 0.25, 0.25]
  - name: vocabulary
    p: {zipf: {k: 50000, s: 1.07}}
    q: {uniform: 50000}
  - name: random-pair
    p: {dirichlet: {k: 20, alpha: 0.5, seed: 1}}
    q: {dirichlet: {k: 20, alpha: 0.5, seed: 2}}
"""

MINIMAL = """
name: m
n: [10]
cases:
  - {name: c, p: 0.5, q: 0.6}
"""


def test_issue_example_loads():
    e = parse_config(ISSUE_EXAMPLE, "coin.yaml")
    assert e.name == "coin-demo" and e.seed == 2026 and e.replicates == 2000
    assert [c.name for c in e.cases] == ["fair-vs-biased", "die", "vocabulary", "random-pair"]
    assert e.checkpoints[0] == 1 and e.checkpoints[-1] == 1_000_000 and len(e.checkpoints) == 25
    assert e.cases[2].pair.p.k == 50_000
    assert e.cases[2].p == {"zipf": {"k": 50000, "s": 1.07}}  # kept as written, not expanded


def test_defaults_are_filled_in():
    e = parse_config(MINIMAL)
    d = e.to_dict()
    assert d["seed"] == 0 and d["replicates"] == 1000 and d["units"] == "nats"
    assert d["estimators"] == list(ESTIMATORS) and d["sampler"] == "counts" and d["kind"] == "convergence"
    assert parse_config("name: m\nn: {max: 100}\ncases: [{name: c, p: 0.5, q: 0.6}]").n == {
        "min": 1,
        "max": 100,
        "points": DEFAULT_POINTS,
    }


def test_resolved_config_round_trips():
    e = parse_config(ISSUE_EXAMPLE)
    text = dump_config(e)
    again = parse_config(text)
    assert again.to_dict() == e.to_dict()
    assert again.checkpoints == e.checkpoints
    assert len(text) < 2000  # generated distributions are not expanded


@pytest.mark.parametrize(
    ("lo", "hi", "points"),
    [(1, 1_000_000, 25), (1, 30, 25), (1, 25, 25), (5, 5, 1), (10, 10**15, 40), (1, 2**53, 3)],
)
def test_checkpoint_grid(lo, hi, points):
    g = checkpoint_grid(lo, hi, points)
    assert len(g) == points and g[0] == lo and g[-1] == hi
    assert all(b > a for a, b in itertools.pairwise(g))
    assert all(isinstance(v, int) for v in g)
    if hi / lo > 1e3 and points > 2:
        # away from the crowded low end the grid is geometric
        ratios = np.diff(np.log(g[points // 2 :]))
        assert np.allclose(ratios, math.log(hi / lo) / (points - 1), rtol=0.05)


def test_integers_written_as_floats_are_accepted():
    e = parse_config(MINIMAL + "replicates: 1e4\n", "x.yaml", ["n={max: 1e6, points: 4}"])
    assert e.replicates == 10_000 and e.checkpoints[-1] == 1_000_000


def test_overrides():
    text = MINIMAL.replace("n: [10]", "n: {max: 100, points: 3}")
    e = parse_config(text, "m.yaml", ["replicates=500", "n.max=1000", "seed=3", "cases[0].q=0.9"])
    assert (e.replicates, e.seed, e.cases[0].q) == (500, 3, 0.9)
    assert e.checkpoints == (1, 32, 1000)
    # a list has no key 'max'
    assert any("no such key" in i for i in _issues(MINIMAL, ["n.max=1000"]))


def _issues(text: str, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml", overrides)
    return [str(i) for i in info.value.issues]


# Each snippet sits at line 5 of a one-case config (`p` on line 5, `q` on 6).
BAD = [
    ("p: -0.1", "must be in [0, 1]", "bad.yaml:5: cases[0].p"),
    ("p: 1.5", "must be in [0, 1]", "bad.yaml:5: cases[0].p"),
    ("p: [0.5, 0.6]", "sum to 1.1", "bad.yaml:5: cases[0].p"),
    ("p: [0.5, abc]", "must be a number", "bad.yaml:5: cases[0].p[1]"),
    ("p: heads", "must be a probability", "bad.yaml:5: cases[0].p"),
    ("p: [0.5, 0.5]\n    q: [0.2, 0.3, 0.5]", "q has 3 categories but p has 2", "bad.yaml:6: cases[0].q"),
    ("p: [0.5, 0.5]\n    q: [1.0, 0.0]", "KL(p‖q) is infinite", "bad.yaml:6: cases[0].q"),
    ("p: 0.5\n    q: 1", "KL(p‖q) is infinite", "bad.yaml:6: cases[0].q"),
    ("p: {zipf: {k: 0, s: 1}}", "between 1", "bad.yaml:5: cases[0].p.zipf.k"),
    ("p: {zipf: {k: 3}}", "missing key 's'", "bad.yaml:5: cases[0].p.zipf"),
    ("p: {dirichlet: {k: 3, alpha: 0, seed: 1}}", "must be in (0", "bad.yaml:5: cases[0].p.dirichlet.alpha"),
    ("p: {unifrom: 3}", "did you mean 'uniform'", "bad.yaml:5: cases[0].p"),
    ("p: yes", "boolean", "bad.yaml:5: cases[0].p"),
    ("p: 0.5\n    colour: red", "unknown key", "bad.yaml:6: cases[0].colour"),
    ("p: 0.5\n    p: 0.4", "given twice (first on line 5)", "bad.yaml:6: cases[0].p"),
    ("p: !!python/object/apply:os.system ['true']", "not allowed", "bad.yaml:5: cases[0].p"),
]


@pytest.mark.parametrize(("snippet", "message", "where"), BAD)
def test_bad_case_values(snippet, message, where):
    text = f"name: x\nn: [1, 10]\ncases:\n  - name: c\n    {snippet}\n"
    if "q:" not in snippet:
        text += "    q: 0.5\n"
    issues = _issues(text)
    assert any(i.startswith(where + ": ") and message in i for i in issues), issues


@pytest.mark.parametrize(
    ("text", "message", "prefix"),
    [
        ("", "empty", "bad.yaml: "),
        ("   \n# only a comment\n", "empty", "bad.yaml: "),
        ("name: [unclosed\n", "invalid YAML", "bad.yaml:2: "),
        ("- a\n- b\n", "must be a mapping", "bad.yaml"),
        ("name: x\n---\nname: y\n", "invalid YAML", "bad.yaml:2: "),
        (MINIMAL.replace("name: m", "name: 'a b'"), "not a usable name", "bad.yaml:2: name"),
        (MINIMAL.replace("name: m", "name: ../up"), "not a usable name", "bad.yaml:2: name"),
        (MINIMAL.replace("name: m", "name: .hidden"), "not a usable name", "bad.yaml:2: name"),
        (MINIMAL.replace("name: m\n", ""), "missing key 'name'", "bad.yaml"),
        (MINIMAL + "replicates: 0\n", "between 2", "bad.yaml:6: replicates"),
        (MINIMAL + "replicates: 10.5\n", "whole number", "bad.yaml:6: replicates"),
        (MINIMAL + "replicates: -5\n", "between 2", "bad.yaml:6: replicates"),
        (MINIMAL + "seed: no\n", "boolean", "bad.yaml:6: seed"),
        (MINIMAL + "units: furlongs\n", "one of nats, bits", "bad.yaml:6: units"),
        (MINIMAL + "estimators: [llr, klr]\n", "did you mean 'llr'", "bad.yaml:6: estimators[1]"),
        (MINIMAL + "estimators: [llr, llr]\n", "listed twice", "bad.yaml:6: estimators[1]"),
        (MINIMAL + "estimators: []\n", "non-empty list", "bad.yaml:6: estimators"),
        (MINIMAL + "sampler: exact\n", "one of counts, per-sample", "bad.yaml:6: sampler"),
        (MINIMAL + "replicate: 10\n", "did you mean 'replicates'", "bad.yaml:6: replicate"),
        (MINIMAL.replace("n: [10]", "n: [10, 10]"), "increase strictly", "bad.yaml:3: n[1]"),
        (MINIMAL.replace("n: [10]", "n: [0, 10]"), "between 1", "bad.yaml:3: n[0]"),
        (MINIMAL.replace("n: [10]", "n: []"), "at least one", "bad.yaml:3: n"),
        (MINIMAL.replace("n: [10]", "n: {min: 10, max: 5}"), "below min", "bad.yaml:3: n.max"),
        (
            MINIMAL.replace("n: [10]", "n: {min: 1, max: 5, points: 9}"),
            "only 5 distinct",
            "bad.yaml:3: n.points",
        ),
        (MINIMAL.replace("n: [10]", "n: {max: 1e20}"), "between 1", "bad.yaml:3: n.max"),
        (
            MINIMAL.replace("n: [10]", "n: [1e8]") + "sampler: per-sample\n",
            "use sampler: counts",
            "bad.yaml:6: sampler",
        ),
        (MINIMAL + "  - {name: c, p: 0.5, q: 0.6}\n", "already used", "bad.yaml:6: cases[1].name"),
        ("name: m\nn: [10]\ncases: []\n", "non-empty list", "bad.yaml:3: cases"),
        (MINIMAL.replace("p: 0.5", "p: 2026-01-01"), "dates are not allowed", "bad.yaml:5: cases[0].p"),
        (MINIMAL + "x: &a [1]\ny: *a\n<<: {z: 1}\n", "merge keys", "bad.yaml"),
        ("name: m\n\tn: 1\n", "invalid YAML", "bad.yaml:2: "),
    ],
)
def test_bad_configs(text, message, prefix):
    issues = _issues(text)
    assert any(message in i and i.startswith(prefix) for i in issues), issues


def test_all_problems_are_reported_at_once():
    text = MINIMAL + "seed: -1\nunits: bit\n"
    issues = _issues(text, ["replicates=1"])
    assert len(issues) == 3
    assert issues[0].startswith("bad.yaml:6: seed") and issues[1].startswith("bad.yaml:7: units")
    assert issues[2].startswith("--set replicates:")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("replicates", "KEY=VALUE"),
        ("=3", "not a key path"),
        ("cases[5].p=0.1", "no such key"),
        ("n.max=[", "invalid YAML"),
        ("seed=!!python/name:os.system", "not allowed"),
    ],
)
def test_bad_overrides(item, message):
    assert any(message in i for i in _issues(MINIMAL, [item]))


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_two_configs_with_one_name_collide(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(MINIMAL)
    b.write_text(MINIMAL)
    with pytest.raises(ConfigError, match="results would collide"):
        load_all([a, b])
