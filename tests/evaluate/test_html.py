"""``report.html`` (trm_bounds.evaluate.html): self-contained, ordered, escaped, and rendered
by a real browser (headless Chromium) without console errors.

The browser tests skip with a reason when ``chromium`` is absent; CI installs Debian's
``chromium`` (``.ci/run``). A control page that throws shows the console check can fail.
"""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.logs.test_dataset import random_source, write_npz
from trm_bounds.evaluate import demo_dump_path, evaluate
from trm_bounds.evaluate.html import FIGURE_CAPTIONS, TITLE, report_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (CI installs Debian's chromium)"
)

#: Strings that would run, or break out of an attribute, if not escaped.
HOSTILE = [
    "<script>document.title='pwned';console.error('pwned')</script>",
    "\"><img src=x onerror=\"console.error('pwned')\">",
    "' onmouseover='console.error(1)",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo dump evaluated with figures: the directory holding report.html."""
    pytest.importorskip("matplotlib")
    from trm_bounds.plot.evaluate import draw_report_figures

    out = tmp_path_factory.mktemp("demo") / "out"
    evaluate(demo_dump_path(), out, progress=False, draw_figures=draw_report_figures,
             max_response_length=512)
    return out


def _hostile_report(base: dict) -> dict:
    """``base`` with hostile strings in every free-text slot the page renders."""
    r = dict(base)
    r["inputs"] = HOSTILE
    r["criteria"] = {HOSTILE[0]: {"threshold": 0.05, "accepted": 1, "acceptance_rate": 0.5}}
    r["length_buckets"] = [{"min_length": 1, "max_length": 2, "n_sequences": 2,
                            "acceptance_rate": {HOSTILE[1]: 0.5}}]  # fmt: skip
    r["certified"] = {"level": 0.95, "method": HOSTILE[1], "n_sequences": 2,
                      "dbar_sum_estimate": 0.1, "dbar_sum_ucb": 0.2, "bound": 0.3,
                      "conditions": HOSTILE}  # fmt: skip
    r["verdict"] = HOSTILE[2]
    r["per_step"] = [{"step": 1, "note": HOSTILE[0]}]
    r["git_hash"] = HOSTILE[1]
    return r


def _chromium(url: str, *extra: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", *extra, url],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _console(stderr: str) -> list[str]:
    """Console messages Chromium logged (``CONSOLE`` lines: errors, uncaught exceptions)."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


def test_page_is_self_contained_ordered_and_captioned(demo):
    """Beside report.md; no network reference; verdict before metrics before figures before
    caveats; every PNG inlined (decodes to the same bytes) with its plain-words caption."""
    page = (demo / "report.html").read_text()
    assert (demo / "report.md").is_file()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page), "external resource"
    assert "<script" not in page.lower()
    order = [page.index(s) for s in ('id="verdict"', "<h2>Metrics", "<h2>Figures", 'id="caveats"')]
    assert order == sorted(order)
    pngs = sorted(demo.glob("*.png"))
    assert len(pngs) == 5
    for p in pngs:
        m = re.search(rf'id="fig-{p.stem}"><img alt="{p.stem}" src="data:image/png;base64,([^"]+)"',
                      page)  # fmt: skip
        assert m, p.stem
        assert base64.b64decode(m.group(1)) == p.read_bytes()
        assert html.escape(FIGURE_CAPTIONS[p.stem]) in page
    for title in ("What is estimated", "What is conditional", "What is certified"):
        assert page.count(title) == 1


def test_certified_section_rendered_when_present_and_skipped_when_absent(demo):
    """The verdict's words and the three certified bounds come first; without a ``certified``
    section (an older report) the page says so and still renders."""
    import json

    base = json.loads((demo / "report.json").read_text())
    page = report_html(base)
    cert, verdict = base["certified"], base["verdict"]
    head = page[page.index('id="verdict"'):page.index("<h2>Metrics")]
    assert html.escape(verdict["text"]) in head
    cls = "bad" if verdict["status"] == "vacuous" else "good"
    assert f'<p class="{cls}">' in head
    for key in ("bound_proved_here", "bound_sharp", "bound_published"):
        assert f"{cert[key]:.4g}" in head
    old = {k: v for k, v in base.items() if k not in ("certified", "verdict")}
    page = report_html(old)
    assert "No certified bound" in page and "<h2>Metrics" in page
    none = dict(base, certified={"computed": False, "reason": "the generation limit is unknown",
                                 "what_to_pass": "pass --max-response-length N"})
    page = report_html(none)
    assert 'id="no-certificate"' in page and "--max-response-length" in page


def test_page_opens_with_the_headline_rates_in_percent_and_an_honest_footer(demo):
    """One line first (the certified bound and whether it says anything); every raw id with
    its meaning; rates printed one way; the footer never says 'git None'."""
    import json

    from trm_bounds.evaluate.words import meaning, percent

    base = json.loads((demo / "report.json").read_text())
    page = (demo / "report.html").read_text()
    assert page.index('id="headline"') < page.index('id="verdict"')
    assert html.escape(base["headline"]) in page and "certified |Error| <=" in base["headline"]
    for c, d in base["criteria"].items():
        assert html.escape(meaning(c)) in page and percent(d["acceptance_rate"]) in page
    for k in base["metrics"]:
        assert html.escape(meaning(k)) in page
    assert "git None" not in report_html(dict(base, git_hash=None))
    assert f"trm-bounds {base['version']}" in page


def test_hostile_fields_are_escaped(demo):
    """Every hostile string appears only escaped: no raw tag or attribute break-out."""
    import json

    page = report_html(_hostile_report(json.loads((demo / "report.json").read_text())))
    lowered = page.lower()
    assert "<script" not in lowered and "<img src=x" not in lowered
    assert "onerror=\"console" not in lowered and "' onmouseover='" not in lowered
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in page


def test_hostile_file_name_through_the_cli(tmp_path):
    """A dump file whose name holds quotes and a tag: the CLI writes a page naming it escaped."""
    name = "a\"b'<img src=x onerror=alert(1)>.npz"
    write_npz(tmp_path / name, random_source(seed=3))
    out = tmp_path / "out"
    from trm_bounds.cli import main

    assert main(["evaluate", str(tmp_path / name), "--out", str(out), "--quiet",
                 "--no-figures"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<img" not in page and "a&quot;b&#x27;&lt;img src=x onerror=alert(1)&gt;.npz" in page


def test_no_html_flag_and_option(tmp_path):
    """``html=False`` writes everything but report.html."""
    path = write_npz(tmp_path / "a.npz", random_source(seed=4))
    evaluate(path, tmp_path / "out", progress=False, html=False)
    assert (tmp_path / "out" / "report.md").is_file()
    assert not (tmp_path / "out" / "report.html").exists()


@needs_chromium
def test_console_check_detects_errors(tmp_path):
    """Negative control: a page that throws is flagged by the console scan."""
    p = tmp_path / "bad.html"
    p.write_text("<html><body><script>throw new Error('control')</script></body></html>")
    r = _chromium(p.as_uri(), "--dump-dom")
    assert any("control" in ln for ln in _console(r.stderr)), r.stderr[-2000:]


@needs_chromium
def test_demo_page_renders_in_chromium(demo, tmp_path):
    """Headless Chromium: the DOM after load has the title, the verdict and every figure; the
    screenshot is a real, non-blank image; no console message."""
    url = (demo / "report.html").as_uri()
    r = _chromium(url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert f"<title>{TITLE}</title>" in dom and 'id="verdict"' in dom
    for p in demo.glob("*.png"):
        assert f'id="fig-{p.stem}"' in dom and html.escape(FIGURE_CAPTIONS[p.stem], quote=False) in dom
    assert _console(r.stderr) == []
    shot = tmp_path / "shot.png"
    r = _chromium(url, f"--screenshot={shot}", "--window-size=1100,2000",
                  "--hide-scrollbars")  # fmt: skip
    assert shot.is_file(), r.stderr[-2000:]
    assert _console(r.stderr) == []
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")
    assert img.shape[:2] == (2000, 1100) and float(np.std(img[..., :3])) > 0.05


@needs_chromium
def test_hostile_page_does_not_execute_in_chromium(demo, tmp_path):
    """The hostile report in a real browser: the title is unchanged, no script or injected
    image element exists, and nothing logged to the console (the payloads log if run)."""
    import json

    p = tmp_path / "hostile.html"
    p.write_text(report_html(_hostile_report(json.loads((demo / "report.json").read_text()))))
    r = _chromium(p.as_uri(), "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"<title>{TITLE}</title>" in r.stdout and "pwned</title>" not in r.stdout
    assert "<script" not in r.stdout.lower() and "<img src=\"x\"" not in r.stdout.lower()
    assert _console(r.stderr) == []
