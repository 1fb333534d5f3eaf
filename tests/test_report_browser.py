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
    for name in (
        "learning_curves.png",
        "qualitative_dsb2018.png",
        "failures_dsb2018_unet.png",
        "failures_dsb2018_mildnet.png",
        "saliency_dsb2018.png",
    ):
        assert f"figures/{name}" in source.imgs
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
