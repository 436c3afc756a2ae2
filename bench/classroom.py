"""A class on this machine: jobs started from real browser pages against one CLI job, in one run.

    python -m bench.classroom [--seconds 45] [--viewer-seconds 20] [--phases browser viewers ...]

Phases, each on the same machine one after another (the default model on the bundled corpus):
1. ``cli``: one ``python -m babygpt train`` job alone, no server, first and again last: the reference is the
   mean of the two, since the machine drifts over minutes.
2. ``one_job_live_page``: the same settings started from a browser page that stays open on the live chart.
3. ``two_jobs``: two browsers (two users) start the same job at once; the scheduler shares the cores.
4. ``two_jobs_oversubscribed``: the same with ``BABYGPT_CORES`` set to twice the real cores, so each worker
   gets as many threads as the machine has cores: how jobs ran before the scheduler divided them.
5. ``server_cpu_per_viewer``: with one job training, 1, 4 and 8 pages open on its live chart; the server
   process's CPU time over a window, per page, as a percentage of one core.
6. ``browser_core_share_per_live_page``: Chromium's own CPU (every process it runs) while one page stays open on
   a training job's live chart, as a share of one core: what drawing the page costs the student's machine.
7. ``two_jobs_browsers_closed``: two browsers start the job and close once it trains, as when the browsers are
   on the students' machines: the scheduler's share without the drawing.

Every app job trains for ``--seconds`` and is stopped; the CLI job trains ``--steps``. Throughput is the median
tokens/s of a job's logged training windows after its first 5 s of training (start-up and warm-up excluded),
read from the run store: the same number for the CLI and the app. Chromium runs on this machine too, so the
browser's own drawing competes with the jobs here; in a real class the browsers are on the students' machines.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from babygpt.store.runs import RunStore
from bench.common import ROOT, emit, environment
from tests.browser_support import StreamlitServer, launch, page_button

SETTLE_S = 5.0


def median_rate(store: RunStore, run_id: str) -> float:
    rates = [m.tokens_per_sec for m in store.metrics(run_id)
             if m.split == "train" and (m.elapsed_s or 0.0) >= SETTLE_S]
    return statistics.median(rates) if rates else 0.0


def wait_done(store: RunStore, run_ids: list[str], timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while any(store.get(r).status.active for r in run_ids):
        if time.time() > deadline:
            raise TimeoutError(f"runs did not finish: {run_ids}")
        time.sleep(1.0)


def cli_job(home: Path, steps: int) -> float:
    env = dict(os.environ, BABYGPT_HOME=str(home), PYTHONPATH=str(ROOT))
    before = {r.id for r in RunStore(home).list_runs()}
    subprocess.run([sys.executable, "-m", "babygpt", "train", "--max-iters", str(steps), "--eval-interval", "100",
                    "--eval-iters", "10", "--log-interval", "5", "--sample-tokens", "120", "--warmup-iters", "50",
                    "--lr", "1e-3", "--min-lr", "1e-4"],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    store = RunStore(home)
    (run,) = [r for r in store.list_runs() if r.id not in before]
    return median_rate(store, run.id)


def open_page(browser, url: str, steps: int):
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.get_by_role("link", name="Model & training").click()
    box = page.get_by_label("max_iters", exact=True)
    box.fill(str(steps))
    box.press("Enter")
    page.wait_for_timeout(1000)
    return page


def start_from_browsers(browser, server: StreamlitServer, n_users: int) -> tuple[RunStore, list[str], list]:
    """``n_users`` browsers (users) press Start at (nearly) the same time; returns once every page shows training,
    with the store, the new runs' ids and the pages."""
    store = RunStore(server.home)
    before = {r.id for r in store.list_runs()}
    pages = [open_page(browser, server.url, 100_000) for _ in range(n_users)]
    for page in pages:
        page.get_by_role("button", name="Start training").click()
    for page in pages:
        page.get_by_text("Training: step").first.wait_for()
    return store, [r.id for r in store.list_runs() if r.id not in before], pages


def app_jobs(browser, server: StreamlitServer, n_users: int, seconds: float) -> list[float]:
    """``n_users`` browsers start one job each at (nearly) the same time, keep their live page open for
    ``seconds`` and stop."""
    store, runs, pages = start_from_browsers(browser, server, n_users)
    time.sleep(seconds)
    for page in pages:
        page_button(page, "Stop").click()
    wait_done(store, runs)
    for page in pages:
        page.context.close()
    return [median_rate(store, r) for r in runs]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command name)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            out[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), name)
    return out


def browser_cpu_seconds() -> float:
    """CPU time of the Chromium processes this benchmark launched (descendants of this process)."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    mine, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            mine.append(child)
            todo.append(child)
    total = 0.0
    for pid in mine:
        if "chrom" in processes[pid][1].lower():
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
    return total


def browser_cost(browser, server: StreamlitServer, seconds: float) -> float:
    """Chromium's CPU, as a share of one core, to keep one live training page open and drawn."""
    store = RunStore(server.home)
    page = open_page(browser, server.url, 100_000)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Training: step").first.wait_for()
    time.sleep(3)
    start_cpu, start = browser_cpu_seconds(), time.time()
    time.sleep(seconds)
    share = (browser_cpu_seconds() - start_cpu) / (time.time() - start)
    page_button(page, "Stop").click()
    page.get_by_text("Stopped: step").first.wait_for()
    page.context.close()
    wait_done(store, [r.id for r in store.list_runs()])
    return round(share, 3)


def jobs_with_browsers_closed(browser, server: StreamlitServer, n_users: int, seconds: float) -> list[float]:
    """``n_users`` browsers start one job each and close once training shows, as when the browsers are on the
    students' own machines; the jobs are stopped as Stop does (SIGTERM to the worker) after ``seconds``."""
    store, runs, pages = start_from_browsers(browser, server, n_users)
    for page in pages:
        page.context.close()
    time.sleep(seconds)
    for run_id in runs:
        os.kill(store.get(run_id).pid, signal.SIGTERM)
    wait_done(store, runs)
    return [median_rate(store, r) for r in runs]


def viewer_cost(browser, server: StreamlitServer, counts: list[int], seconds: float) -> dict[str, float]:
    """Server CPU per open live page while one long job trains (percent of one core, per page)."""
    store = RunStore(server.home)
    owner = open_page(browser, server.url, 100_000)
    owner.get_by_role("button", name="Start training").click()
    owner.get_by_text("Training: step").first.wait_for()
    url = owner.url  # the same user in more tabs: every tab follows the job's live chart
    context = owner.context
    out = {}
    pages = [owner]
    for count in counts:
        while len(pages) < count:
            page = context.new_page()
            page.goto(url)
            page.get_by_text("Training: step").first.wait_for()
            pages.append(page)
        time.sleep(3)
        start_cpu, start = cpu_seconds(server.pid), time.time()
        time.sleep(seconds)
        used = cpu_seconds(server.pid) - start_cpu
        out[str(count)] = round(100 * used / (time.time() - start) / count, 2)
    page_button(owner, "Stop").click()
    owner.get_by_text("Stopped: step").first.wait_for()
    context.close()
    wait_done(store, [r.id for r in store.list_runs()])
    return out


PHASES = ("one_job_live_page", "viewers", "browser", "two_jobs", "two_jobs_browsers_closed", "oversubscribed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=45.0, help="how long each app phase trains")
    parser.add_argument("--steps", type=int, default=800, help="steps of the CLI reference job")
    parser.add_argument("--viewer-seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    result: dict = {"benchmark": "classroom", "cli_steps": args.steps, "app_seconds": args.seconds,
                    "phases": args.phases, "env": environment()}
    app: dict = {}
    needs_cli = bool({"one_job_live_page", "two_jobs", "two_jobs_browsers_closed", "oversubscribed"} & set(args.phases))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        home = Path(tmp) / "runs"
        cli_before = cli_job(home, args.steps) if needs_cli else 0.0
        browser = launch(p)
        server = StreamlitServer(home, BABYGPT_MAX_JOBS="2").start()
        try:
            if "one_job_live_page" in args.phases:
                (app["one_job_live_page"],) = app_jobs(browser, server, 1, args.seconds)
            if "browser" in args.phases:
                result["browser_core_share_per_live_page"] = browser_cost(browser, server, args.viewer_seconds)
            if "viewers" in args.phases:
                result["server_cpu_percent_per_viewer"] = viewer_cost(browser, server, args.viewers,
                                                                      args.viewer_seconds)
            if "two_jobs" in args.phases:
                app["two_jobs_shared"] = app_jobs(browser, server, 2, args.seconds)
            if "two_jobs_browsers_closed" in args.phases:
                app["two_jobs_browsers_closed"] = jobs_with_browsers_closed(browser, server, 2, args.seconds)
        finally:
            server.stop()
        if "oversubscribed" in args.phases:
            server = StreamlitServer(home, BABYGPT_MAX_JOBS="2", BABYGPT_CORES=str(2 * os.cpu_count())).start()
            try:
                app["two_jobs_oversubscribed"] = app_jobs(browser, server, 2, args.seconds)
            finally:
                server.stop()
        cli_after = cli_job(home, args.steps) if needs_cli else 0.0
        browser.close()
    if needs_cli:
        # the machine drifts over minutes: the reference is the CLI job measured before and after the app phases
        reference = (cli_before + cli_after) / 2
        if not reference:
            raise SystemExit(f"The CLI job of {args.steps} steps trained for less than {SETTLE_S:g} s: raise --steps.")
        result["cli_tokens_per_sec"] = {"before": round(cli_before), "after": round(cli_after),
                                        "reference": round(reference)}
        for name, rates in app.items():
            result[f"{name}_tokens_per_sec"] = [round(r) for r in rates] if isinstance(rates, list) else round(rates)
            result[f"{name}_vs_cli"] = round((sum(rates) if isinstance(rates, list) else rates) / reference, 3)
    emit(result)


if __name__ == "__main__":
    main()
