"""Which KL estimator? The advice table built from a results folder's summary (sim.advice)."""

from __future__ import annotations

import pytest

from sim import registry
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
