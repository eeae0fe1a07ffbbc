"""``sim report``: one self-contained HTML page, valid HTML5, every figure embedded and shown."""

from __future__ import annotations

import base64
import doctest
import os
import re
import shutil
import subprocess
from pathlib import Path

import html5lib
import pandas as pd
import pytest

import sim.report
from sim import figures
from sim.config import parse_config
from sim.runner import Execution, run_experiment

CONFIG = """
name: {name}
description: "A coin & a die <small>, for the report's tests."
seed: 4
replicates: 100
n: [1, 10, 100]
cases:
  - {{name: coin, p: 0.3, q: 0.5}}
  - {{name: die, p: [0.1, 0.2, 0.3, 0.4], q: {{uniform: 4}}}}
"""


def _folder(out: Path, name: str) -> Path:
    folder = run_experiment(parse_config(CONFIG.format(name=name)), out, execution=Execution(workers=1)).path
    figures.draw_figures(folder, processes=1)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    good = _folder(out, "good")
    bad = Path(shutil.copytree(good, out / "bad"))  # the same run, named bad, and tampered with
    config = bad / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("name: good", "name: bad"), encoding="utf-8")
    summary = pd.read_csv(bad / "summary.csv")
    row = (summary.case == "coin") & (summary.n == 100) & (summary.estimator == "llr")
    summary.loc[row, "mean"] += 10 * summary.loc[row, "mcse"]  # a mean 10 MCSE off: sim check fails
    summary.to_csv(bad / "summary.csv", index=False)
    return {"good": good, "bad": bad}


@pytest.fixture(scope="module")
def page(folders, tmp_path_factory) -> tuple[Path, str]:
    from click.testing import CliRunner

    from sim.cli import main

    out = tmp_path_factory.mktemp("page") / "report.html"
    r = CliRunner().invoke(main, ["report", str(folders["good"]), str(folders["bad"]), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 experiment(s)" in r.stdout and "sim check fails for bad" in r.stdout
    return out, out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_page_is_valid_html5(page):
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page[1])  # strict: raises on the first parse error
    assert parser.errors == []


@pytest.mark.slow
def test_the_page_loads_nothing_and_runs_nothing(page):
    tree = html5lib.parse(page[1], namespaceHTMLElements=False)
    links = [e.get(a) for e in tree.iter() for a in ("src", "href") if e.get(a) is not None]
    assert links and all(v.startswith(("data:image/png;base64,", "#")) for v in links), links
    assert tree.find(".//script") is None and tree.find(".//link") is None and "@import" not in page[1]


@pytest.mark.slow
def test_every_figure_is_embedded_byte_for_byte(page, folders):
    tree = html5lib.parse(page[1], namespaceHTMLElements=False)
    embedded = [base64.b64decode(img.get("src").split(",", 1)[1]) for img in tree.iter("img")]
    files = [p.read_bytes() for f in folders.values() for p in sorted((f / "figures").glob("*.png"))]
    assert len(files) >= 10 and sorted(embedded) == sorted(files)


@pytest.mark.slow
def test_each_experiment_shows_its_description_verdict_tables_and_config(page, folders):
    tree = html5lib.parse(page[1], namespaceHTMLElements=False)
    sections = {s.find("h2").text: s for s in tree.iter("section")}
    assert list(sections) == ["good", "bad"]
    for name, section in sections.items():
        text = "".join(section.itertext())
        assert "A coin & a die <small>, for the report's tests." in text  # escaped, shown as written
        assert (folders[name] / "config.yaml").read_text(encoding="utf-8") in text
        tables = section.findall(".//table")
        summary = pd.read_csv(folders[name] / "summary.csv")
        assert len(tables[0].findall(".//tr")) == 1 + 2 and len(tables[1].findall(".//tr")) == 1 + len(
            summary
        )
    good = "".join(sections["good"].itertext())
    assert "agrees with theory" in good and sections["good"].find(".//ul[@class='failures']") is None
    cases = ["".join(li.itertext()) for li in sections["good"].find(".//ul").iter("li")]
    assert cases == ["coin: p = 0.3, q = 0.5", "die: p = (0.1, 0.2, 0.3, 0.4), q = uniform(K=4)"]
    failures = ["".join(li.itertext()) for li in sections["bad"].find(".//ul[@class='failures']").iter("li")]
    assert any("case coin, n = 100, llr: column mean" in f for f in failures), failures
    verdict = sections["bad"].find(".//span[@class='fail']")
    assert verdict is not None and "DISAGREES" in verdict.text.upper()


@pytest.mark.slow
def test_means_are_written_to_their_mcse(page, folders):
    summary = pd.read_csv(folders["good"] / "summary.csv")
    row = summary[(summary.case == "coin") & (summary.n == 100) & (summary.estimator == "llr")].iloc[0]
    shown = sim.report.to_mcse(row["mean"], row["mcse"])
    mean, mcse = (float(x) for x in shown.split(" ± "))
    assert abs(mean - row["mean"]) <= 0.05 * row["mcse"] and 0.95 * row["mcse"] <= mcse <= 1.05 * row["mcse"]
    assert f'<td class="num">{shown}</td>' in page[1]


def test_to_mcse_examples():
    assert doctest.testmod(sim.report, verbose=False).failed == 0


@pytest.mark.slow
def test_a_folder_that_is_not_one_exits_2_and_writes_nothing(cli, folders, tmp_path):
    out = tmp_path / "report.html"
    r = cli("report", str(folders["good"]), str(tmp_path / "nowhere"), "-o", str(out))
    assert r.exit_code == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_page_replaces_an_older_one_as_an_ordinary_file(cli, folders, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    assert cli("report", str(folders["good"]), "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


#: Appended to a copy of the page (the page itself has no script): after the load, the body says
#: how many images decoded and take room on the page.
_PROBE = """<script>
window.addEventListener("load", () => {
  const shown = [...document.images].filter(
    (i) => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
  document.body.setAttribute("data-shown", shown.length + "/" + document.images.length);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no headless browser installed (apt-get install chromium)")
def test_a_headless_browser_shows_every_figure(page, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(page[1].replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    command = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*command, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    images = page[1].count("<img ")
    assert images >= 10
    assert re.search(r'data-shown="(\d+)/(\d+)"', dom).groups() == (str(images), str(images))
