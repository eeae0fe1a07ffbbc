"""Commented config templates for ``sim init``: each validates as written.

Each template is a complete experiment, explained line by line, with ``{name}`` for the
experiment's name; :data:`TEMPLATES` holds them by kind, and ``tests/test_templates.py`` loads
every one.  They live with the config layer, whose keys they spell out.
"""

from __future__ import annotations

_HEAD = """\
# {name}: made by `sim init --{kind}`. Run it with `sim run {name}.yaml`;
# check a change without running with `sim validate {name}.yaml`.
name: {name}
description: "{description}"   # one line, shown on figures and reports
seed: 2026                 # every random draw follows from it (and each case's name)
"""

_COUNTS = """\
replicates: 1000           # or {{mcse: 0.001, max: 1000000}}: as many as that precision needs
units: nats                # nats | bits
n: {{min: 1, max: 100000, points: 16}}   # sample sizes, log-spaced; or a list: [1, 10, 100]
"""

TEMPLATES: dict[str, tuple[str, str]] = {
    "coin": (
        "A fair coin against a biased model: the llr converges to KL(p‖q).",
        _COUNTS
        + """\
estimators: [llr, cross_entropy, entropy, plugin_kl]   # the default four
cases:
  - name: fair-vs-biased
    description: "p = 0.5 against q = 0.8"
    p: 0.5                 # a number: a coin, P(heads)
    q: 0.8
""",
    ),
    "categorical": (
        "A loaded die and a Zipf vocabulary against uniform models.",
        _COUNTS
        + """\
cases:
  - name: die
    p: [0.1, 0.2, 0.3, 0.4]   # probabilities (they must sum to 1 within 1e-5)
    q: {{uniform: 4}}
  - name: vocabulary
    p: {{zipf: {{k: 10000, s: 1.07}}}}   # p_k ∝ k^-s, k = 1..K; or {{dirichlet: {{k, alpha, seed}}}}
    q: {{uniform: 10000}}
""",
    ),
    "family": (
        "Normal and Poisson sources against models of their own family.",
        _COUNTS
        + """\
cases:
  - name: normal
    p: {{normal: {{mean: 0, sd: 1}}}}
    q: {{normal: {{mean: 0.5, sd: 1.5}}}}
  - name: counts
    p: {{poisson: {{rate: 3}}}}   # or {{exponential: {{rate}}}}, {{geometric: {{p}}}}
    q: {{poisson: {{rate: 4}}}}
""",
    ),
    "markov": (
        "A sticky two-state source against the i.i.d. model with its frequencies.",
        """\
replicates: 400            # Markov paths are simulated step by step: cost grows with n
units: nats
n: {{min: 2, max: 10000, points: 12}}
cases:
  - name: sticky
    p: {{markov: {{transition: [[0.9, 0.1], [0.1, 0.9]], initial: stationary}}}}
    q: [0.5, 0.5]          # a categorical q is the i.i.d. (unigram) model; or another chain
""",
    ),
    "grid": (
        "Coins against a sweep of models: a grid of cases and its sweep figure.",
        _COUNTS
        + """\
grid:                      # one case per combination of the lists (p0.5_q0.55, …)
  p: [0.5, 0.75]
  q: [0.55, 0.6, 0.7, 0.8, 0.9]
""",
    ),
    "fit": (
        "A softmax classifier fitted by cross-entropy: minimising it minimises KL.",
        """\
kind: fit
replicates: 100
n: [20, 100, 1000, 10000]  # training set sizes
smoothing: 0.5             # add-α smoothing of the fitted class probabilities
inputs:
  probs: [0.3, 0.4, 0.3]   # the inputs' law
  features: [[-1.0], [0.0], [1.0]]
truth:
  weights:                 # one row per class: (intercept, slope); p(y|x) = softmax(W (1, x))
    - [0.3, 1.6]
    - [1.0, 0.0]
    - [0.0, 0.0]
cases:
  - {{name: linear, model: linear}}       # contains the truth: its KL goes to 0
  - {{name: constant, model: constant}}   # ignores x: its KL floor is I(X; Y)
""",
    ),
}

#: The template ``sim init`` writes when no kind is named.
DEFAULT = "coin"


def template(kind: str, name: str) -> str:
    """The config text of template ``kind`` for an experiment called ``name``."""
    description, body = TEMPLATES[kind]
    return (_HEAD + body).format(name=name, kind=kind, description=description)
