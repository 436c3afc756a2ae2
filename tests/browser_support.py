"""What the real-browser tests share: Debian's Chromium, a Streamlit server they can restart, layout checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--disable-quic"]
PAGES = [("data", "Data"), ("train", "Model & training"), ("attention", "Attention"), ("generate", "Generate"),
         ("runs", "Runs"), ("lessons", "Lessons")]


def require_chromium() -> None:
    """Skip without a browser on a developer's machine; under CI a missing browser is a failure."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but /usr/bin/chromium is missing: .ci/run installs it with apt-get")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` on a loopback port; ``restart`` keeps the port and the run store."""

    def __init__(self, home: Path, **env: str):
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, BABYGPT_HOME=str(home), PYTHONPATH=str(ROOT), **env)
        self.process: subprocess.Popen | None = None

    def start(self) -> StreamlitServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return self
            except OSError:
                time.sleep(0.3)
        self.process.kill()
        pytest.fail("streamlit did not become healthy: " + self.process.stdout.read().decode()[-2000:])

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


# Text cut by its box (labels, buttons, metric values, titles), and charts or their titles and legends that do
# not fit the main column.
LAYOUT_PROBLEMS_JS = """() => {
  const problems = [];
  const visible = el => el.offsetParent !== null && el.getClientRects().length > 0;
  const boxes = '[data-testid="stMetricLabel"], [data-testid="stMetricValue"], [data-testid="stWidgetLabel"], '
    + 'button, h1, h2, h3';
  for (const box of document.querySelectorAll(boxes)) {
    if (!visible(box)) continue;
    for (const el of [box, ...box.querySelectorAll('*')]) {
      if (!visible(el) || el.closest('.js-plotly-plot') || el.tagName === 'svg' || el.closest('svg')) continue;
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') {
        problems.push(`cut: "${(box.innerText || '').trim().slice(0, 50)}"`);
        break;
      }
    }
  }
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const right = main ? main.getBoundingClientRect().right : window.innerWidth;
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    if (!visible(plot)) continue;
    const r = plot.getBoundingClientRect();
    if (r.right > right + 2) problems.push(`chart wider than the column by ${Math.round(r.right - right)} px`);
    for (const t of plot.querySelectorAll('.xtitle, .ytitle, .legendtext, .gtitle')) {
      const b = t.getBoundingClientRect();
      if (b.width && (b.left < r.left - 1 || b.right > r.right + 1 || b.top < r.top - 1 || b.bottom > r.bottom + 1))
        problems.push(`chart text outside its chart: "${t.textContent.slice(0, 40)}"`);
    }
  }
  return problems;
}"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT_PROBLEMS_JS)
