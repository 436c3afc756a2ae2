"""A class of thirty: what open boards cost the server, and thirty challenge entries through the scheduler.

    python -m bench.class_board [--phases viewers queue] [--seconds 30] [--viewers 1 10 30]

``viewers``: a class of 30 students is written into a run store (16 runs training, logging a step every 0.5 s as
workers would; ``tests.class_seed``) and ``streamlit run app.py`` serves it. Simulated viewers then open pages over
Streamlit's own websocket protocol, as a browser does: each asks for the page, and re-asks for every live part
(fragment) at the interval the page sets, as the browser's timers do; nothing is drawn. The server process's CPU
time over a window, less the same window with nobody watching, divided by the viewers, is each viewer's cost, as a
percentage of one core. The live training page (a student following their training run) is measured the same way
in the same run: it is the budget the board is held to. Bytes sent per viewer per second are counted too.

``queue``: thirty students enter a challenge at once (thirty threads) on a server with 16 cores and 16 slots,
simulated: jobs do not train but advance their steps at a rate proportional to the threads the scheduler gives
them, through the scheduler's real queue, claims and thread shares. Reported: whether runs start in the order they
entered, the most threads in use at any moment (never above the cores), each running job's share when the server
is full, the waits, and whether every run finished (nobody starved).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from babygpt.config import TrainConfig, tokens_per_step
from babygpt.model.sizing import ModelLimits
from babygpt.orchestration.plan import plan_training
from babygpt.scoring.leaderboard import held_out_ids
from babygpt.server.backend import WatchedJob
from babygpt.server.classroom import Classroom
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunInfo, RunStore
from bench.common import emit, environment, shakespeare
from tests.browser_support import StreamlitServer
from tests.class_seed import ClassWriter, seed_class

SETTLE_S = 6.0


# --- simulated viewers -------------------------------------------------------------------------

def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rerun(query: str, page: str, page_hash: str = "", fragment: str = "") -> bytes:
    msg = BackMsg()
    state = msg.rerun_script
    state.query_string = query
    state.page_name = page
    state.page_script_hash = page_hash
    if fragment:
        state.fragment_id = fragment
        state.is_auto_rerun = True
    return msg.SerializeToString()


class Viewer:
    """One open page: asks for it, then re-asks for each fragment at the interval the server gives, as a
    browser's timers do. Counts bytes and finished script runs."""

    def __init__(self, url: str, page: str, query: str):
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.origin, self.page, self.query = url, page, query
        self.bytes = self.runs = self.exceptions = 0
        self.timers: dict[str, asyncio.Task] = {}

    async def run(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                      origin=self.origin) as ws:
            await ws.send(rerun(self.query, self.page))
            reader = asyncio.ensure_future(self._read(ws))
            await stop.wait()
            for task in [reader, *self.timers.values()]:
                task.cancel()

    async def _read(self, ws) -> None:
        page_hash = ""
        async for raw in ws:
            self.bytes += len(raw)
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                page_hash = msg.new_session.page_script_hash
            elif kind == "script_finished":
                self.runs += 1
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self.exceptions += msg.delta.new_element.WhichOneof("type") == "exception"
            elif kind == "auto_rerun":
                fragment, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
                if fragment in self.timers:
                    self.timers.pop(fragment).cancel()
                self.timers[fragment] = asyncio.ensure_future(self._tick(ws, fragment, interval, page_hash))

    async def _tick(self, ws, fragment: str, interval: float, page_hash: str) -> None:
        while True:
            await asyncio.sleep(interval)
            await ws.send(rerun(self.query, self.page, page_hash, fragment))


async def watch(url: str, page: str, queries: list[str], seconds: float) -> list[Viewer]:
    viewers = [Viewer(url, page, q) for q in queries]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(v.run(stop)) for v in viewers]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=False)
    return viewers


def measure_viewers(server: StreamlitServer, page: str, queries: list[str], seconds: float) -> dict:
    """Open ``queries`` viewers of ``page``; the server's CPU over the ``seconds`` after they settle."""
    box: dict = {}

    def run() -> None:
        async def main() -> None:
            watching = asyncio.ensure_future(watch(server.url, page, queries, SETTLE_S + seconds))
            await asyncio.sleep(SETTLE_S)
            box["cpu0"], box["t0"] = server_cpu_s(server.pid), time.perf_counter()
            box["bytes0"] = 0
            await asyncio.sleep(seconds)
            box["cpu1"], box["t1"] = server_cpu_s(server.pid), time.perf_counter()
            box["viewers"] = await watching
        asyncio.run(main())

    run()
    viewers = box["viewers"]
    window = box["t1"] - box["t0"]
    return {"viewers": len(queries), "server_cpu_pct_of_core": 100 * (box["cpu1"] - box["cpu0"]) / window,
            "kb_per_viewer_per_s": sum(v.bytes for v in viewers) / len(viewers) / (SETTLE_S + seconds) / 1024,
            "script_runs_per_viewer_per_s": sum(v.runs for v in viewers) / len(viewers) / (SETTLE_S + seconds),
            "exceptions_shown": sum(v.exceptions for v in viewers)}


def idle_cpu(server: StreamlitServer, seconds: float) -> float:
    c0, t0 = server_cpu_s(server.pid), time.perf_counter()
    time.sleep(seconds)
    return 100 * (server_cpu_s(server.pid) - c0) / (time.perf_counter() - t0)


def viewers_phase(seconds: float, counts: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "runs"
        seeded = seed_class(RunStore(home), students=30, training=16)
        writer = ClassWriter(seeded).start()
        server = StreamlitServer(home).start()
        try:
            measure_viewers(server, "class", [f"user={seeded.keys[0]}"], 5)  # warm the server's imports
            out: dict = {"students": 30, "training": 16, "window_s": seconds, "pages": {}}
            out["idle_server_cpu_pct_of_core"] = idle_cpu(server, seconds)
            for page in ("train", "class"):
                rows = []
                for n in counts:  # each viewer is a student whose run is training (their own live page)
                    keys = [seeded.keys[i % 16] for i in range(n)]
                    result = measure_viewers(server, page, [f"user={k}" for k in keys], seconds)
                    idle = idle_cpu(server, seconds / 2)
                    result["idle_after_pct_of_core"] = idle
                    result["per_viewer_pct_of_core"] = (result["server_cpu_pct_of_core"] - idle) / n
                    rows.append(result)
                out["pages"][page] = rows
            return out
        finally:
            writer.stop()
            server.stop()


# --- thirty entries on a simulated 16-core server ------------------------------------------------------

class SimulatedJob(WatchedJob):
    """A job that trains nothing: it advances ``steps_per_thread_s`` steps a second for each thread it has, logs
    them, is scored when it ends, and records every share it was given."""

    def __init__(self, store: RunStore, info: RunInfo, threads: int, on_exit, server: SimulatedServer):
        self.store, self.info, self.threads = store, info, threads
        self.stop_requested, self.exit_message = False, ""
        self.log, self.rate, self.ended = server.log, server.rate, server.ended
        self.log.append((time.perf_counter(), info.id, threads))
        self._watch(lambda: self._train(on_exit), f"sim-{info.id}")

    def _train(self, on_exit) -> None:
        store, run_id = self.store, self.info.id
        store.set_status(run_id, RunStatus.RUNNING)
        cfg = self.info.record.training
        step, tick = 0.0, 0.05
        while step < cfg.max_iters and not self.stop_requested:
            time.sleep(tick)
            step = min(cfg.max_iters, step + self.rate * self.threads * tick)
            store.log_metrics(run_id, [MetricRow(int(step), "train", 2.0, 1e-3, 1.0, None)])
        store.log_score(run_id, int(step), 1.5, 1000)
        self.ended[run_id] = time.perf_counter()
        store.set_status(run_id, RunStatus.DONE if step >= cfg.max_iters else RunStatus.STOPPED)
        on_exit(self)

    def stop(self, wait: float = 0.0) -> None:
        self.stop_requested = True

    def tell_threads(self, threads: int) -> None:
        self.threads = threads
        self.store.set_threads(self.info.id, threads)
        self.log.append((time.perf_counter(), self.info.id, threads))


class SimulatedServer:
    """A 16-core machine's backend for the scheduler: 16 slots, cores shared, jobs simulated."""

    name, shares_cores = "simulated", True

    def __init__(self, cores: int, rate: float):
        self.cores, self.rate, self.log = cores, rate, []
        self.started: dict[str, float] = {}  # run id -> when its job started
        self.ended: dict[str, float] = {}  # run id -> when its job let go of its threads

    def slots(self) -> int:
        return self.cores

    def limits(self) -> ModelLimits:
        return ModelLimits(max_params=50_000_000, job_memory_bytes=4 * 2**30)

    def threads_per_job(self) -> int:
        return 1

    def describe(self) -> str:
        return f"{self.cores} simulated cores"

    def start(self, store, info, threads, on_exit, memory_bytes=None) -> SimulatedJob:
        self.started[info.id] = time.perf_counter()
        return SimulatedJob(store, info, threads, on_exit, self)

    def adopt(self, store, on_exit) -> list:
        return []

    def close(self) -> None:
        pass


def threads_in_use(log: list, ended: dict[str, float]) -> int:
    """The most threads held at once, replaying every share given and every job's end."""
    events = sorted([(t, "share", run, n) for t, run, n in log] + [(t, "end", run, 0) for run, t in ended.items()])
    current: dict[str, int] = {}
    peak = 0
    for t, kind, run, n in events:
        if kind == "end":
            current.pop(run, None)
        elif t < ended.get(run, float("inf")):  # a share told to a job that has already let go is not held
            current[run] = n
        peak = max(peak, sum(current.values()))
    return peak


def queue_phase(students: int = 30, cores: int = 16, steps: int = 200, rate: float = 100.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        backend = SimulatedServer(cores, rate)
        scheduler = Scheduler(store, SchedulerSettings(max_jobs=cores, cores=cores), backend=backend)
        classroom = Classroom(scheduler)
        corpus = shakespeare()
        train = TrainConfig(max_iters=steps, eval_interval=steps, batch_size=12, device="cpu")
        plan = plan_training(corpus, "char", "gpt", train, n_layer=2, n_embd=64, block_size=64)
        budget = steps * tokens_per_step(plan.model_config, plan.train_config)
        classroom.set_challenge(Actor("teacher-key-0000000000", admin=True), corpus, "char", 0.1, budget)
        assert len(held_out_ids(plan.split.val)) > 1
        users = [f"student-{i:02d}-{'q' * 16}" for i in range(students)]
        entered: dict[str, float] = {}
        lock = threading.Lock()

        def enter(user: str) -> str:
            info = classroom.enter(user, plan, f"entry of {user[:10]}")
            with lock:
                entered[info.id] = info.queued_at
            return info.id

        t0 = time.perf_counter()
        with ThreadPoolExecutor(students) as pool:  # thirty students press Start at the same moment
            ids = list(pool.map(enter, users))
        submit_s = time.perf_counter() - t0
        started, ended = backend.started, backend.ended
        full_shares: list[int] = []
        deadline = time.time() + 300
        while len(ended) < students and time.time() < deadline:
            running = store.live()
            if len(running) == cores and not full_shares:
                full_shares = sorted(i.threads or 0 for i in running)
            time.sleep(0.05)
        scheduler.stop_all(wait=10)
        by_start = sorted(started, key=lambda r: started[r])
        waited = by_start[cores:]  # the runs that found the server full
        done = [r for r in ids if store.get(r).status is RunStatus.DONE]
        board = classroom.board()
        waits = [started[r] - t0 for r in ids if r in started]
        return {
            "students": students, "cores": cores, "slots": scheduler.slots, "submit_all_s": submit_s,
            "all_started": len(started) == students, "all_finished": len(done) == students,
            "waiting_runs_started_in_queue_order": [entered[r] for r in waited] == sorted(entered[r] for r in waited),
            "waited": len(waited),
            "max_threads_in_use": threads_in_use(list(backend.log), dict(ended)),
            "threads_per_job_when_full": full_shares,
            "wait_s": {"min": min(waits), "median": statistics.median(waits), "max": max(waits)},
            "run_s_alone_at_one_thread": steps / rate,
            "ranked_on_board": len(board.standings),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", nargs="+", default=["viewers", "queue"], choices=["viewers", "queue"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 10, 30])
    args = parser.parse_args()
    result: dict = {"benchmark": "class_board", "environment": environment(), "date": time.strftime("%Y-%m-%d")}
    if "queue" in args.phases:
        result["queue"] = queue_phase()
    if "viewers" in args.phases:
        result["viewers"] = viewers_phase(args.seconds, args.viewers)
    emit(result)


if __name__ == "__main__":
    main()
