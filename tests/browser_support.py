"""What the real-browser tests share: Debian's Chromium, a Streamlit server they can restart, layout checks."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.needs import missing

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--disable-quic"]
PAGES = [("data", "Data"), ("train", "Model & training"), ("attention", "Attention"), ("inside", "Inside"),
         ("features", "Features"), ("generate", "Generate"), ("runs", "Runs"), ("lessons", "Lessons"), ("class", "Class")]


def train_demo_run(home: Path, eval_interval: int = 20, name: str = "demo") -> None:
    """A small run trained from the command line into ``home`` (nobody's in the app): what the browser tests look at."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), BABYGPT_HOME=str(home))
    subprocess.run([sys.executable, "-m", "babygpt", "train", "--n-layer", "2", "--n-embd", "64", "--block-size",
                    "32", "--max-iters", "40", "--eval-interval", str(eval_interval), "--name", name], env=env,
                   cwd=ROOT, check=True, capture_output=True)


def require_chromium() -> None:
    """Skip without a browser on a developer's machine; under CI a missing browser is a failure."""
    if not CHROMIUM.exists():
        missing("/usr/bin/chromium", ".ci/run installs it with apt-get (apt-get install chromium)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)


def new_page(browser, width: int = 1400, height: int = 1000, **options):
    """A page of its own browser context (its own cookies: another user) at a given window size, waiting up to
    a minute for what it looks for: a worker can take that long to start on a busy 2-core machine."""
    page = browser.new_context(viewport={"width": width, "height": height}, **options).new_page()
    page.set_default_timeout(60_000)
    return page


def page_button(page, name: str):
    """A button of the page itself, by its label: Streamlit's own header shows a "Stop" button while a script
    reruns, which a plain role lookup would also find; the label exactly, so "Stop" is not a setting's help button
    ("Help for stop when validation loss ≤")."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name=name, exact=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` on a loopback port; ``restart`` keeps the port and the run store."""

    def __init__(self, home: Path, started_from: Path | None = None, **env: str):
        """``started_from``: a folder other than the checkout to start the server in, as a teacher's service or
        home folder would (``streamlit run /path/to/app.py``, nothing added to PYTHONPATH)."""
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = started_from or ROOT
        self.env = dict(os.environ, BABYGPT_HOME=str(home), **env)
        if started_from is None:
            self.env["PYTHONPATH"] = str(ROOT)
        else:
            self.env.pop("PYTHONPATH", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> StreamlitServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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

    def close(self) -> None:
        """Stop the server and every training worker it left running: workers outlive their server on purpose
        (a restart finds them), so a test's end must end them too, or a long run trains on beside the next tests."""
        self.stop()
        database = self.home / "runs.db"
        if not database.exists():
            return
        with sqlite3.connect(database) as db:
            pids = [pid for (pid,) in db.execute("SELECT pid FROM runs WHERE status IN ('running', 'starting')") if pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


# Text cut by its box (labels, buttons, metric values, titles), and charts or their titles and legends that do
# not fit the main column.
LAYOUT_PROBLEMS_JS = """() => {
  const problems = [];
  const visible = el => el.offsetParent !== null && el.getClientRects().length > 0;
  const boxes = '[data-testid="stMetricLabel"], [data-testid="stMetricValue"], [data-testid="stWidgetLabel"], '
    + 'button, h1, h2, h3, th, [role="tab"], label';
  for (const box of document.querySelectorAll(boxes)) {
    if (!visible(box)) continue;
    for (const el of [box, ...box.querySelectorAll('*')]) {
      // visually hidden helpers (1 px wide, for screen readers) are meant to be cut
      if (!visible(el) || el.tagName === 'INPUT' || el.clientWidth <= 2) continue;
      if (el.closest('.js-plotly-plot') || el.closest('svg')) continue;
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') {
        problems.push(`cut: "${(box.innerText || '').trim().slice(0, 50)}"`);
        break;
      }
    }
  }
  // a metric's value is one line: wrapped onto two or three ("cpu · 2 / threads · / float32") it reads as several
  for (const value of document.querySelectorAll('[data-testid="stMetricValue"]')) {
    if (!visible(value)) continue;
    const range = document.createRange();
    range.selectNodeContents(value);
    const lines = new Set([...range.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top)));
    if (lines.size > 1) problems.push(`metric value wraps: "${value.innerText.trim().slice(0, 40)}"`);
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
    const legend = plot.querySelector('.legend');
    if (legend) {
      const l = legend.getBoundingClientRect();
      for (const t of plot.querySelectorAll('.xtitle, .ytitle, .gtitle, .xtick text, .ytick text')) {
        const b = t.getBoundingClientRect();
        if (b.width && b.left < l.right && l.left < b.right && b.top < l.bottom && l.top < b.bottom)
          problems.push(`legend overlaps "${t.textContent.slice(0, 40)}"`);
      }
    }
    // legend items must not overlap each other ("train (per step)train (eval)")
    const items = [...plot.querySelectorAll('.legend .traces')].map(t => t.getBoundingClientRect()).filter(b => b.width);
    for (let i = 0; i < items.length; i++)
      for (let j = i + 1; j < items.length; j++) {
        const a = items[i], b = items[j];
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
          problems.push(`legend items overlap (${i} and ${j})`);
      }
    // an annotation (a baseline's label) must lie inside the chart, not run off its edge ("passed at s")
    for (const t of plot.querySelectorAll('.annotation-text')) {
      const b = t.getBoundingClientRect();
      if (b.width && (b.left < r.left - 1 || b.right > r.right + 1))
        problems.push(`annotation cut by the chart's edge: "${t.textContent.slice(0, 40)}"`);
    }
    // an axis whose tick labels repeat ("0% 1% 1% 2%") reads wrong: every tick must say something new
    for (const layer of plot.querySelectorAll('.xaxislayer-above, .yaxislayer-above, .cbaxis')) {
      const ticks = [...layer.querySelectorAll('text')].map(t => t.textContent.trim()).filter(Boolean);
      const repeated = ticks.filter((t, i) => ticks.indexOf(t) !== i);
      if (repeated.length) problems.push(`repeated ticks: ${ticks.join(' ')}`);
    }
  }
  return problems;
}"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT_PROBLEMS_JS)


# Whether a character draws as a glyph in the chart font, or as the font's empty box: a missing glyph draws the
# same pixels as an unassigned code point (U+0378).
GLYPH_DRAWN_JS = """(ch) => {
  const draw = c => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 40;
    const ctx = canvas.getContext('2d');
    ctx.font = '28px "Open Sans", verdana, arial, sans-serif';
    ctx.fillText(c, 4, 30);
    return Array.from(ctx.getImageData(0, 0, 40, 40).data).join(',');
  };
  return draw(ch) !== draw('\\u0378');
}"""


def glyph_drawn(page, ch: str) -> bool:
    return page.evaluate(GLYPH_DRAWN_JS, ch)


class PageAudit:
    """What a walkthrough checks on every screen: no exception, no request off the server, nothing cut or repeated."""

    def __init__(self, page, server_url: str, screenshots: Path | None):
        self.page, self.screenshots = page, screenshots
        self.origin = server_url.rstrip("/")
        self.external: list[str] = []
        page.on("request", self._on_request)

    def _on_request(self, request) -> None:
        url = request.url
        if not (url.startswith(self.origin) or url.startswith(("data:", "blob:", "about:"))):
            self.external.append(url)

    def check(self, name: str) -> None:
        self.page.wait_for_timeout(600)  # let charts finish their layout
        exceptions = self.page.locator('[data-testid="stException"]').all_inner_texts()
        assert not exceptions, f"{name}: exception on the page: {exceptions[0][:300]}"
        assert not self.external, f"{name}: requests to other hosts: {self.external}"
        problems = layout_problems(self.page)
        if self.screenshots:
            self.screenshots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)
        assert not problems, f"{name}: {problems}"
