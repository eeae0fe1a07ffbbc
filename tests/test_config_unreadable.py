"""A value refused while reading the YAML (a tag, a key given twice) is reported once, never a crash."""

from __future__ import annotations

import pytest

from sim.config import parse_config
from sim.errors import ConfigError

FIT = "name: x\nkind: fit\nn: [10]\n"
SATURATED = "cases: [{name: s, model: saturated}]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\nn: !!set {a}\ncases: [{name: s, p: 0.5, q: 0.5}]\n",
            "<config>:2: n: the tag !!set is not allowed",
        ),
        (FIT + "truth: !!set {a}\n" + SATURATED, "<config>:4: truth: the tag !!set is not allowed"),
        (
            FIT + "truth: {table: !!set {a}}\n" + SATURATED,
            "<config>:4: truth.table: the tag !!set is not allowed",
        ),
        (
            FIT + "truth: {table: [[0.5, 0.5]]}\ninputs: {probs: !!set {a}}\n" + SATURATED,
            "<config>:5: inputs.probs: the tag !!set is not allowed",
        ),
        (
            FIT + "truth: {weights: [[1, 0], !!set {a}]}\ninputs: {features: [[1.0]]}\n" + SATURATED,
            "<config>:4: truth.weights[1]: the tag !!set is not allowed",
        ),
        (
            FIT + "truth:\n  table: [[0.5, 0.5]]\n  table: [[0.5, 0.5]]\n" + SATURATED,
            "<config>:6: truth.table: key given twice (first on line 5)",
        ),
    ],
)
def test_a_value_refused_while_reading_is_the_only_issue(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert str(err.value) == message
