"""report.html in a real browser (headless Chromium through Playwright): every image and link
resolves, no console errors, no horizontal overflow at 1280 px and 400 px, a screenshot is
saved; the folder stays valid when moved or zipped; `report --single-file` stands alone.

Needs Debian's `chromium` (`.ci/run` installs it when missing; set GROKSCOPE_CHROMIUM to use
another build) and the `playwright` package (the dev extra); skipped with the reason otherwise."""

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from helpers import cli


def chromium_path() -> str | None:
    for name in (os.environ.get("GROKSCOPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (shutil.which(name) or Path(name).is_file()):
            return shutil.which(name) or name
    return None


playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                 "(pip install -e .[dev])")
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no Chromium on this machine (Debian: apt-get "
                                "install chromium; or set GROKSCOPE_CHROMIUM to a Chrome/Chromium binary)")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def analysis(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "analysis"
    r = cli("analyze", tiny_run.path, "--out", out, "--quiet", "--probe", "metrics,weights,fourier,progress,phases")
    assert r.returncode == 0, r.stderr
    return out


def check_page(browser, html: Path, shots: Path) -> list[str]:
    """Everything a reader's browser would show wrong, as one line each."""
    problems = []
    for width in (1280, 400):
        page = browser.new_page(viewport={"width": width, "height": 900})
        messages = []
        page.on("console", lambda m: messages.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: messages.append(f"failed to load {r.url}"))
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        problems += messages
        for src, ok in page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 60), "
                                     "i.complete && i.naturalWidth > 0])"):
            if not ok:
                problems.append(f"image {src} does not load")
        for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"):
            if href.startswith("#"):
                if not page.evaluate("id => document.getElementById(id) !== null", href[1:]):
                    problems.append(f"link {href} has no target")
            elif "://" not in href and not (html.parent / href).exists():
                problems.append(f"link {href} does not resolve")
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll > inner:
            problems.append(f"{scroll} px of content in a {inner} px window: horizontal overflow")
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"{html.stem}-{width}.png"), full_page=True)
        page.close()
    return problems


def test_report_in_a_real_browser(browser, analysis, tmp_path):
    assert check_page(browser, analysis / "report.html", tmp_path / "shots") == []
    assert (tmp_path / "shots" / "report-1280.png").stat().st_size > 10_000
    assert (tmp_path / "shots" / "report-400.png").stat().st_size > 10_000


def test_the_folder_stays_valid_when_moved_or_zipped(browser, analysis, tmp_path):
    moved = tmp_path / "elsewhere" / "report-folder"
    shutil.copytree(analysis, moved)
    assert check_page(browser, moved / "report.html", tmp_path / "shots") == []
    archive = shutil.make_archive(str(tmp_path / "report"), "zip", analysis)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unzipped")
    assert check_page(browser, tmp_path / "unzipped" / "report.html", tmp_path / "shots") == []


def test_single_file_report_stands_alone(browser, analysis, tmp_path):
    r = cli("report", analysis, "--single-file")
    assert r.returncode == 0, r.stderr
    single = Path(r.stdout.strip())
    assert single.name == "report-single.html"
    alone = tmp_path / "alone" / single.name
    alone.parent.mkdir()
    shutil.copy(single, alone)  # nothing beside it
    assert check_page(browser, alone, tmp_path / "shots") == []
    assert "src='figures/" not in alone.read_text() and "data:image/png;base64," in alone.read_text()


def test_the_checks_fail_on_a_missing_figure_and_a_wide_page(browser, analysis, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(analysis, broken)
    (broken / "figures" / "weights.png").unlink()
    text = (broken / "report.html").read_text()
    (broken / "report.html").write_text(text.replace("</body>", "<div style='width:2000px'>wide</div></body>"))
    problems = " ".join(check_page(browser, broken / "report.html", tmp_path / "shots"))
    assert "image figures/weights.png does not load" in problems
    assert "link figures/weights.png does not resolve" in problems
    assert "horizontal overflow" in problems


def test_live_report_in_a_real_browser(browser, tiny_run, tmp_path):
    """The report a watcher writes while the run trains: valid like the final one, its banner at
    the top of the page. With GROKSCOPE_SCREENSHOTS=DIR the top of the page is saved as
    DIR/live_report.png (docs/live.md shows it)."""
    import json

    from grokscope.analysis.live import Watch

    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    for path in (run / "checkpoints").glob("step_*.safetensors"):
        if int(path.name[5:13]) > 60:
            path.unlink()
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join([lines[0]] + [x for x in lines[1:] if float(x.split(",")[0]) <= 60])
                                     + "\n")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    out = tmp_path / "live"
    w = Watch(run, ["weights", "fourier", "progress"], out=out, batch=4, report_seconds=1e9)
    w.poll()                                   # one look: the newest and a few spread checkpoints
    w.report_seconds = 0
    w.poll()
    assert check_page(browser, out / "report.html", tmp_path / "shots") == []
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((out / "report.html").resolve().as_uri())
    banner = page.locator("#live")
    assert "Live: the run is training" in banner.inner_text() and banner.bounding_box()["y"] < 200
    shots = os.environ.get("GROKSCOPE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / "live_report.png"))
    page.close()
