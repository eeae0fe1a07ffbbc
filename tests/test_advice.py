"""Which KL estimator? The advice table built from a results folder's summary (sim.advice)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from sim import advice, registry
from sim.errors import ResultsError
from sim.registry import Setting


@pytest.mark.parametrize(
    ("spec", "setting"),
    [
        (registry.LLR, Setting.SCORED),
        (registry.K1, Setting.SCORED),
        (registry.K2, Setting.SCORED),
        (registry.K3, Setting.SCORED),
        (registry.PLUGIN_KL, Setting.KNOWN_Q),
        (registry.PLUGIN_KL_MM, Setting.KNOWN_Q),
        (registry.PLUGIN_KL_JACKKNIFE, Setting.KNOWN_Q),
        (registry.parameterised("smoothed_kl", {"alpha": "perks"}), Setting.KNOWN_Q),
        (registry.parameterised("bayes_kl", {"alpha": 0.5}), Setting.KNOWN_Q),
        (registry.CROSS_ENTROPY, None),
        (registry.ENTROPY, None),
        (registry.P_WRONG, None),
        (registry.KL_FITTED, None),
    ],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_each_estimator_of_kl_names_the_setting_it_needs(spec, setting):
    assert spec.setting is setting


# --------------------------------------------------------------------------
# The table, from a summary

ROOT = Path(__file__).resolve().parents[1]
PLUGIN, MM, JK = registry.PLUGIN_KL.name, registry.PLUGIN_KL_MM.name, registry.PLUGIN_KL_JACKKNIFE.name
LLR, K3 = registry.LLR.name, registry.K3.name


def _rows(*rows: tuple[str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["estimator", "rmse", "mcse"])


def test_pick_takes_the_lowest_rmse_and_flags_a_runner_up_within_monte_carlo_error():
    rows = _rows((PLUGIN, 0.50, 0.01), (MM, 0.30, 0.01), (JK, 0.32, 0.01))
    p = advice.pick(rows)
    assert (p.estimator, p.rmse, p.runner_up, p.runner_up_rmse) == (MM, 0.30, JK, 0.32)
    assert p.close  # 0.02 ≤ 2·√2·0.01 = 0.028


def test_pick_does_not_flag_a_runner_up_beyond_monte_carlo_error():
    p = advice.pick(_rows((PLUGIN, 0.50, 0.01), (MM, 0.30, 0.01), (JK, 0.33, 0.01)))
    assert p.estimator == MM and p.runner_up == JK and not p.close  # 0.03 > 0.028
    assert advice.pick(_rows((MM, 0.30, 0.01), (JK, 0.33, 0.01)), z=3.0).close  # 0.03 ≤ 0.042


def test_pick_skips_empty_rmses_and_needs_no_runner_up():
    p = advice.pick(_rows((PLUGIN, math.nan, math.nan), (MM, 0.3, 0.01)))
    assert p.estimator == MM and p.runner_up is None and not p.close
    assert advice.pick(_rows((PLUGIN, math.nan, math.nan))) is None


def _summary() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two cases (K = 10 and 20) at n = 1, 10, 100, 200: RMSEs made up so that each setting has a known winner."""
    rmse = {PLUGIN: 0.5, MM: 0.2, JK: 0.25, LLR: 0.3, K3: 0.1, registry.CROSS_ENTROPY.name: 0.01}
    rows = [
        (case, n, est, 0.7 if est != registry.CROSS_ENTROPY.name else 3.0, value / n, 0.001 / n)
        for case in ("die", "twenty")
        for n in (1, 10, 100, 200)
        for est, value in rmse.items()
    ]
    summary = pd.DataFrame(rows, columns=["case", "n", "estimator", "target", "rmse", "mcse"])
    return summary, pd.DataFrame({"case": ["die", "twenty"], "k": [10, 20]})


def test_rows_split_the_settings_and_ignore_estimators_of_other_targets():
    summary, analytic = _summary()
    rows = advice.rows(summary, analytic, alphabets=(10, 20))
    die = [r for r in rows if r.case == "die"]
    assert [r.n for r in die] == [1, 10, 100]
    assert [r.n for r in rows if r.case == "twenty"] == [200]  # K/10 = 2 and K = 20 were not simulated
    for r in rows:
        assert r.known_q.estimator == MM and r.known_q.runner_up == JK  # cross_entropy's 0.01 is not KL's
        assert r.scored.estimator == K3 and r.scored.runner_up == LLR
        assert r.plugin_rmse == pytest.approx(0.5 / r.n) and r.kl == 0.7


def test_a_missing_or_repeated_alphabet_size_is_an_error():
    summary, analytic = _summary()
    with pytest.raises(ResultsError, match="K = 30"):
        advice.rows(summary, analytic, alphabets=(30,))
    with pytest.raises(ResultsError, match="2 cases"):
        advice.rows(summary, analytic.assign(k=10), alphabets=(10,))


def test_the_table_shows_three_significant_digits_and_the_close_runner_up():
    summary, analytic = _summary()
    for est, value in ((MM, 0.123456), (JK, 0.1246)):  # 0.00114/n apart: within 2·√2·0.001/n
        summary.loc[summary.estimator == est, "rmse"] = value / summary.n
    text = advice.table(advice.rows(summary, analytic, (10,)), units="nats", replicates=100)
    lines = text.splitlines()
    assert lines[2] == f"| 10 (die) | 1 | 0.7 | `{MM}` 0.123 ≈ `{JK}` 0.125 | 0.5 | `{K3}` 0.1 |"
    assert lines[4] == f"| 10 (die) | 100 | 0.7 | `{MM}` 0.00123 ≈ `{JK}` 0.00125 | 0.005 | `{K3}` 0.001 |"
    assert "100 replicates, in nats" in text


def test_replace_block_swaps_only_what_lies_between_the_markers():
    text = f"intro\n{advice.BEGIN}\nold\n{advice.END}\noutro\n"
    new = advice.replace_block(text, "new table")
    assert new == f"intro\n{advice.BEGIN}\nnew table\n{advice.END}\noutro\n"
    assert advice.block_of(new) == "new table"
    with pytest.raises(ValueError, match="expected one"):
        advice.replace_block("no markers", "x")
    with pytest.raises(ValueError, match="expected one"):
        advice.replace_block(f"{advice.END}{advice.BEGIN}", "x")


def test_the_readme_table_is_generated_from_the_committed_results():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert advice.block_of(readme) == advice.render(ROOT / "results" / "estimators")


def test_python_m_sim_advice_writes_the_readme_and_refuses_a_folder_without_results(tmp_path, capsys):
    readme, shipped = tmp_path / "README.md", ROOT / "results" / "estimators"
    readme.write_text(f"# x\n{advice.BEGIN}\n{advice.END}\n", encoding="utf-8")
    assert advice.main([str(shipped), "--readme", str(readme)]) == 0
    assert advice.block_of(readme.read_text(encoding="utf-8")) == advice.render(shipped)
    assert advice.main([str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err
