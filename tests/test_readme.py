"""Every example in README.md runs and prints what the README shows.

The README is parsed here, so an example added to it is tested without
touching this file:

- each ```console block holds ``$ command`` lines, each followed by the
  output the README shows for it; every command is run (``sim …`` in
  process, through click's CliRunner, in a fresh folder) and its output
  (stdout and stderr, as a terminal shows them) compared line by line.  A
  line ``…`` stands for any number of omitted lines.  A command with no
  runner here fails the test.
- a ```yaml block whose first line is a comment naming a file
  (``# bad.yaml: …``) is that file's content: it is written, exactly as
  shown, into the folder where the console examples run.
- every other ```yaml block is a config that must validate.
- each ```python block is a doctest (``>>>`` prompts) and is run by
  :mod:`doctest`.

Console examples run in a temporary folder holding those files and a copy of
the committed ``results/``, so they cannot write into the repository.

Only numbers that depend on the results folder regenerated on each machine
are masked (see :data:`MASKS`): in ``sim check``'s verdict, the test counts,
the Bonferroni bound computed from them and the largest |z|.
"""

from __future__ import annotations

import doctest
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: A README line that stands for any number of omitted output lines.
ELLIPSIS = "…"

#: ``(command prefix, pattern, replacement)``: output that may legitimately differ
#: from the README, masked in both texts before they are compared.
MASKS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    (
        ("sim", "check"),
        re.compile(r"\(\d+ tests, \d+ of them statistical"),
        "(<tests> tests, <m> of them statistical",
    ),
    (("sim", "check"), re.compile(r"\(Bonferroni: \|z\| ≤ \d+\.\d+\)"), "(Bonferroni: |z| ≤ <bound>)"),
    (("sim", "check"), re.compile(r"; largest \|z\| = \d+\.\d+\)"), "; largest |z| = <z>)"),
)

_FILE_COMMENT = re.compile(r"#\s*(?P<name>[\w.-]+\.ya?ml)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README.

    Attributes
    ----------
    lang : str
        The fence's language (``console``, ``python``, ``yaml``, …).
    text : str
        The block's content, without the fences.
    line : int
        README line number of the block's first content line.
    files : dict of str to str
        Files named by earlier yaml blocks (name → content).
    """

    lang: str
    text: str
    line: int
    files: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text``, each with the files named before it.

    Parameters
    ----------
    text : str
        Markdown.

    Returns
    -------
    list of Block
        In document order.
    """
    blocks: list[Block] = []
    files: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\S*).*", lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"README.md:{i + 1}: unclosed code block"
        body = "\n".join(lines[i + 1 : end]) + "\n"
        lang = opening.group(1)
        if lang == "yaml" and (named := _FILE_COMMENT.match(lines[i + 1] if end > i + 1 else "")):
            files[named.group("name")] = body
        blocks.append(Block(lang, body, i + 2, dict(files)))
        i = end + 1
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
CONSOLE = [b for b in BLOCKS if b.lang == "console"]
PYTHON = [b for b in BLOCKS if b.lang == "python"]
#: Config examples: yaml blocks that are not a named input file of a console example.
CONFIGS = [b for b in BLOCKS if b.lang == "yaml" and not _FILE_COMMENT.match(b.text)]


def examples(block: Block) -> list[tuple[int, str, list[str]]]:
    """The ``(line, command, expected output lines)`` of a console block.

    Parameters
    ----------
    block : Block
        A console block.

    Returns
    -------
    list of tuple
        One entry per ``$`` line, with its README line number.
    """
    found: list[tuple[int, str, list[str]]] = []
    for offset, line in enumerate(block.text.splitlines()):
        if line.startswith("$ "):
            found.append((block.line + offset, line[2:], []))
        else:
            assert found, f"README.md:{block.line + offset}: output before any '$ ' command"
            found[-1][2].append(line)
    assert found, f"README.md:{block.line}: a console block without a '$ ' command"
    return found


def masked(argv: list[str], lines: list[str]) -> list[str]:
    """``lines`` with the masks of :data:`MASKS` that apply to ``argv`` applied, right-stripped."""
    out = []
    for line in lines:
        for prefix, pattern, replacement in MASKS:
            if tuple(argv[: len(prefix)]) == prefix:
                line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected`` with each ``…`` line standing for any lines."""
    if ELLIPSIS not in expected:
        return expected == actual
    segments: list[list[str]] = [[]]
    for line in expected:
        if line == ELLIPSIS:
            segments.append([])
        else:
            segments[-1].append(line)
    first, *middle, last = segments
    if actual[: len(first)] != first or len(actual) < len(first) + len(last):
        return False
    stop = len(actual) - len(last)
    if actual[stop:] != last:
        return False
    at = len(first)
    for seg in middle:  # in order, each as early as it fits
        while at + len(seg) <= stop and actual[at : at + len(seg)] != seg:
            at += 1
        if at + len(seg) > stop:
            return False
        at += len(seg)
    return True


def run_sim(argv: list[str]) -> str:
    """Run ``sim`` in process and return what a terminal would show."""
    result = CliRunner().invoke(main, argv, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.output


#: Runners by program name: each takes the argument list after the program.
RUNNERS = {"sim": run_sim}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("block", CONSOLE, ids=[b.id for b in CONSOLE])
def test_console_example_prints_what_the_readme_shows(block: Block, tmp_path: Path, monkeypatch) -> None:
    for name, content in block.files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    before = _snapshot(ROOT / "results")
    monkeypatch.chdir(tmp_path)
    for line, command, expected in examples(block):
        argv = shlex.split(command)
        runner = RUNNERS.get(argv[0])
        if runner is None:
            pytest.fail(f"README.md:{line}: no runner for {command!r}; add one to RUNNERS in {__file__}")
        actual = masked(argv, runner(argv[1:]).splitlines())
        shown = masked(argv, expected)
        if not matches(shown, actual):
            pytest.fail(
                f"README.md:{line}: `{command}` printed\n"
                + "\n".join(actual)
                + "\nbut the README shows\n"
                + "\n".join(shown)
            )
    assert _snapshot(ROOT / "results") == before, "a README example wrote into results/"


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_example_is_a_passing_doctest(block: Block) -> None:
    test = doctest.DocTestParser().get_doctest(block.text, {}, block.id, str(README), block.line - 1)
    assert test.examples, f"README.md:{block.line}: a python block without '>>>' examples"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=0)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("block", CONFIGS, ids=[b.id for b in CONFIGS])
def test_config_example_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    from sim.config import load_config

    path = tmp_path / "example.yaml"
    path.write_text(block.text, encoding="utf-8")
    load_config(path)


def test_every_example_has_a_runner() -> None:
    """The README's examples are found, and none sits where this file does not look."""
    assert len(CONSOLE) >= 3 and len(PYTHON) >= 1
    for block in BLOCKS:
        if block.lang not in ("console", "python"):
            prompts = [ln for ln in block.text.splitlines() if ln.startswith(("$ ", ">>> "))]
            assert not prompts, f"README.md:{block.line}: prompts in a ```{block.lang} block are not run"
    for block in CONSOLE:
        for line, command, _ in examples(block):
            assert shlex.split(command)[0] in RUNNERS, f"README.md:{line}: no runner for {command!r}"


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["a", "b", "c"], False),
        (["a", ELLIPSIS], ["a", "b", "c"], True),
        (["a", ELLIPSIS], ["b"], False),
        (["a", ELLIPSIS, "c"], ["a", "b", "c"], True),
        (["a", ELLIPSIS, "c"], ["a", "c", "b"], False),
        ([ELLIPSIS, "b", ELLIPSIS], ["a", "b", "c"], True),
        (["a", ELLIPSIS, "a"], ["a"], False),
    ],
)
def test_ellipsis_stands_for_omitted_lines(expected: list[str], actual: list[str], ok: bool) -> None:
    assert matches(expected, actual) is ok


def test_masks_hide_only_the_machine_dependent_numbers() -> None:
    verdict = (
        "results/coin: agrees with theory (360 tests, 271 of them statistical at family-wise "
        "α = 0.001 (Bonferroni: |z| ≤ 4.63); largest |z| = 2.25)"
    )
    other = "results/coin: agrees with theory (1 tests, 0 of them statistical at family-wise "
    other += "α = 0.001 (Bonferroni: |z| ≤ 10.00); largest |z| = 0.00)"
    assert masked(["sim", "check"], [verdict]) == masked(["sim", "check"], [other])
    assert masked(["sim", "check"], [verdict]) != masked(["sim", "check"], [verdict.replace("0.001", "0.01")])
    assert masked(["sim", "llr"], [verdict]) == [verdict]


def test_yaml_files_are_written_as_shown() -> None:
    blocks = parse_blocks("```yaml\n# a.yaml: x\nk: 1\n```\n\n```console\n$ sim run a.yaml\n```\n")
    assert blocks[1].files == {"a.yaml": "# a.yaml: x\nk: 1\n"} and blocks[1].line == 7
