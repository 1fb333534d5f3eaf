"""The HTML report in a real headless browser (Debian's chromium; `.ci/run` installs it): every image
loads, every link resolves inside the report folder, nothing is fetched from the network, and a
screenshot is written. Skipped without chromium, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from seeing_sweep import train_tiny

from bench.cli import main

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    return found


def run_browser(page: Path, profile: Path, *args: str) -> str:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Refs(HTMLParser):
    """ids, hrefs, img srcs and every other src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []
        self.srcs: list[str] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "img":
            self.imgs.append(str(a.get("src")))
        elif a.get("src"):
            self.srcs.append(str(a["src"]))
        if tag == "body":
            self.body = a


def parse(text: str) -> Refs:
    refs = Refs()
    refs.feed(text)
    return refs


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium()
    base = tmp_path_factory.mktemp("report")
    results = train_tiny(base / "results")
    assert (
        main(
            [
                "tune",
                "--name",
                "lr",
                "--grid",
                "lr=0.001,0.01",
                "--arch",
                "unet",
                "--dataset",
                "dsb2018",
                "--folds",
                "0",
                "--results",
                str(results),
                "--jobs",
                "1",
                "--quiet",
                "--set",
                "epochs=1",
                "--set",
                "image_size=32",
                "--set",
                "width=4",
                "--set",
                "depth=3",
            ]
        )
        == 0
    )
    out = base / "report"
    assert main(["report", "--all", "--results", str(results), "--out", str(out)]) == 0
    return out


def test_every_image_loads_and_every_link_resolves(report: Path, tmp_path: Path) -> None:
    page = report / "index.html"
    dom = parse(run_browser(page, tmp_path / "profile", "--dump-dom"))
    source = parse(page.read_text())
    assert len(source.imgs) >= 8  # tables' figures, learning curves, grid, two galleries, saliency
    assert dom.body.get("data-images") == str(len(source.imgs))  # the page's own check ran after load
    assert dom.body.get("data-broken-images") == "0"
    for name in ("learning_curves.png", "qualitative_dsb2018.png", "saliency_dsb2018.png"):
        assert f"figures/{name}" in source.imgs
    # one failure gallery per architecture, or one shared by architectures whose worst images are the same
    galleries = [i for i in source.imgs if i.startswith("figures/failures_dsb2018_")]
    assert "figures/failures_dsb2018_unet.png" in galleries and 1 <= len(galleries) <= 2
    assert "tables/tuned_lr.html" in source.hrefs and "Table 3 (tuning): lr" in page.read_text()
    assert dom.hrefs and all(not re.match(r"[a-z]+:", h) for h in dom.hrefs + dom.imgs + dom.srcs), (
        "the report must be self-contained (no absolute or network URLs)"
    )
    for href in dom.hrefs:
        if href.startswith("#"):
            assert href[1:] in dom.ids, f"link {href} has no target"
        else:
            assert (report / href).is_file(), f"link {href} points at no file"
    for src in dom.imgs:
        assert (report / src).is_file()


def test_a_missing_figure_is_caught(report: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    (copy / "figures" / "learning_curves.png").unlink()
    dom = parse(run_browser(copy / "index.html", tmp_path / "profile", "--dump-dom"))
    assert dom.body.get("data-broken-images") == "1"


def test_screenshot(report: Path, tmp_path: Path) -> None:
    shot = report / "screenshot.png"
    run_browser(report / "index.html", tmp_path / "profile", "--window-size=1400,1000", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


class Figures(HTMLParser):
    """Each <img> of a page with the text of the <figcaption> of the <figure> around it (None: no figure)."""

    def __init__(self) -> None:
        super().__init__()
        self.figure: list[str] | None = None
        self.in_caption = False
        self.pending: list[str] = []
        self.imgs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self.figure, self.pending = [], []
        elif tag == "figcaption":
            self.in_caption = True
        elif tag == "img":
            src = str(dict(attrs).get("src"))
            self.imgs[src] = None
            if self.figure is not None:
                self.pending.append(src)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self.in_caption = False
        elif tag == "figure" and self.figure is not None:
            for src in self.pending:
                self.imgs[src] = " ".join("".join(self.figure).split())
            self.figure = None

    def handle_data(self, data: str) -> None:
        if self.in_caption and self.figure is not None:
            self.figure.append(data)


VISIBLE = (
    "<script>window.addEventListener('load', function () {"
    "document.body.setAttribute('data-visible-text', document.body.innerText.slice(0, 1500));});</script>"
)


def test_the_first_screen_tells_the_story(report: Path, tmp_path: Path) -> None:
    """The first 1,500 characters of visible text, as Chromium renders the page, say where the data come
    from, the profile, the protocol and unit of analysis, and how many fold models did not learn; every
    picture is a figure with a caption saying what it draws."""
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    page = copy / "index.html"
    page.write_text(page.read_text().replace("</body>", VISIBLE + "</body>"))
    dom = parse(run_browser(page, tmp_path / "profile", "--dump-dom"))
    first = str(dom.body.get("data-visible-text"))
    assert first.startswith("Benchmark report"), first[:200]
    assert "SYNTHETIC stand-ins" in first and "DSB-2018 (" in first  # data source, datasets, image counts
    assert "Profile" in first and "quick" in first and "pipeline check" in first
    assert "holdout" in first and "Unit of analysis" in first
    assert re.search(r"\d+ of \d+ fold models did not learn", first)
    assert "Provenance: bench " in first or "Table 5 (headline)" in first
    figures = Figures()
    figures.feed((report / "index.html").read_text())
    assert len(figures.imgs) >= 8
    for src, caption in figures.imgs.items():
        assert caption, f"{src} has no <figure> with a non-empty <figcaption>"
    gallery = next(c for s, c in figures.imgs.items() if "failures_dsb2018_" in s)
    assert "outlined in red" in gallery and "fold model" in gallery
