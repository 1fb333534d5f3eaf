"""The screenshot in docs/tracking.md: a sweep of two architectures exported to a real MLflow server, and the
MLflow UI's run comparison of their fold models, rendered by headless Chromium.

    python scripts/mlflow_screenshot.py --results RESULTS --out docs/mlflow-compare.png

``--results`` is an existing results folder (without it, a small two-architecture sweep is run into a
temporary folder first: the command is printed). The server is started here, on the loopback address, with
a SQLite store in a temporary folder, and stopped at the end. Needs the tracking extra and ``chromium``.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from subprocess import DEVNULL

SWEEP = "--arch mildnet,residual_unet --dataset isic2018 --folds 0,1 --set epochs=10 --set image_size=64 --set width=8"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"]
    cmd += ["--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "w")  # noqa: SIM115 (the server's log for its whole life)
    proc = subprocess.Popen(
        cmd + ["--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    raise SystemExit(f"mlflow server did not start; its log: {root / 'server.log'}")


def bench(*args: str) -> None:
    cmd = [sys.executable, "-m", "bench.cli", *args]
    print("$ bench " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def compare_url(uri: str, experiment: str) -> str:
    """The MLflow UI's comparison of every job run of ``experiment`` (the configuration's run left out)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`bench.kind` = 'job'", order_by=["params.arch"])
    ids = json.dumps([r.info.run_id for r in runs])
    query = urllib.parse.urlencode({"runs": ids, "experiments": json.dumps([exp.experiment_id])})
    return f"{uri}/#/compare-runs?{query}"


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: it reads
    commands on its file descriptor 3 and answers on 4, each message JSON ended by a NUL byte)."""

    def __init__(self, width: int, height: int) -> None:
        browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if browser is None:
            raise SystemExit("needs chromium on PATH")
        self.profile = tempfile.TemporaryDirectory()
        commands_r, self.commands = os.pipe()
        self.answers, answers_w = os.pipe()
        keep = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_r, answers_w)]  # clear of 3 and 4
        os.close(commands_r)
        os.close(answers_w)

        def as_3_and_4() -> None:
            os.dup2(keep[0], 3)
            os.dup2(keep[1], 4)

        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        cmd += [f"--user-data-dir={self.profile.name}", "--remote-debugging-pipe", f"--window-size={width},{height}"]
        self.proc = subprocess.Popen(
            [*cmd, "about:blank"],
            preexec_fn=as_3_and_4,  # noqa: PLW1509 (this script starts no threads)
            pass_fds=(3, 4),
            stdout=DEVNULL,
            stderr=DEVNULL,
        )
        for fd in keep:
            os.close(fd)
        self.buffer, self.count, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: object) -> dict:
        self.count += 1
        message: dict = {"id": self.count, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.answers, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.count:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def js(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        return result.get("result", {}).get("value")

    def load(self, url: str, settle: float) -> None:
        self.call("Page.navigate", url=url)
        time.sleep(settle)

    def save(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except RuntimeError:
            pass
        self.proc.wait(timeout=30)
        self.profile.cleanup()


#: What the script does on the comparison page, in the page: close the assistant panel MLflow opens on a
#: first visit (its state is kept in the browser's local storage), show only the parameters that differ,
#: and plot the test Dice of each fold model against the architecture (parallel coordinates).
CLOSE_ASSISTANT = (
    "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true')"
)
DIFF_ONLY = "document.querySelector('button[aria-label=\"Parameters - Show diff only\"]').click()"
UNPLOT_METRICS = """(() => {
  const metrics = [...document.querySelectorAll('[class*=select-selector]')][1];
  for (const remove of metrics.querySelectorAll('[class*=select-selection-item] [class*=remove]')) {
    remove.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
    remove.click();
  }
})()"""
TYPE_TEST_DICE = """(() => {
  const metrics = [...document.querySelectorAll('[class*=select-selector]')][1];
  metrics.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
  const input = metrics.querySelector('input');
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, 'test_dice');
  input.dispatchEvent(new Event('input', {bubbles: true}));
})()"""
PICK_TEST_DICE = """(() => {
  const option = [...document.querySelectorAll('[class*=select-item-option]')].find(o => o.innerText.trim() === 'test_dice');
  if (!option) return false;
  option.click();
  document.body.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
  return true;
})()"""


def screenshot(url: str, out: Path, width: int, height: int, settle: float) -> None:
    browser = Chromium(width, height)
    try:
        browser.load(url, settle)
        browser.js(CLOSE_ASSISTANT)
        browser.call("Page.reload")
        time.sleep(settle)
        browser.js(DIFF_ONLY)
        browser.js(UNPLOT_METRICS)
        time.sleep(1)
        browser.js(TYPE_TEST_DICE)
        time.sleep(2)
        if not browser.js(PICK_TEST_DICE):
            raise SystemExit("the comparison page has no test_dice metric to plot")
        time.sleep(3)
        browser.save(out)
    finally:
        browser.close()
    print(f"wrote {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", help="a results folder (default: run a small two-architecture sweep first)")
    p.add_argument("--out", default="docs/mlflow-compare.png")
    p.add_argument("--size", default="1500,1900", help="browser window, WIDTH,HEIGHT")
    p.add_argument("--settle", type=float, default=15.0, help="seconds to let a page render")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = Path(args.results) if args.results else root / "results"
        if not args.results:
            bench("run", *SWEEP.split(), "--results", str(results), "--quiet")
        port = free_port()
        server = start_server(root, port)
        try:
            uri = f"http://127.0.0.1:{port}"
            bench(
                "export",
                "--to",
                "mlflow",
                "--results",
                str(results),
                "--tracking-uri",
                uri,
                "--experiment",
                "two-architectures",
            )
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            width, height = (int(v) for v in args.size.split(","))
            screenshot(compare_url(uri, "two-architectures"), Path(args.out), width, height, args.settle)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
