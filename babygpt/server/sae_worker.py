"""``python -m babygpt.server.sae_worker RUN JOB_FILE``: train one SAE on a finished run in its own process.

Like a training worker (``babygpt.server.worker``): whole cores and its own interpreter, the store the only
channel. ``JOB_FILE`` (in the SAE's folder, written by ``babygpt.server.sae_jobs``) holds the request; the worker
writes its progress back into it as it goes, and the SAE beside it when done. SIGTERM stops training at the next
step and keeps the SAE learned so far; SIGUSR1 says the scheduler wrote a new thread count into the file.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import torch

from babygpt.errors import BabyGPTError
from babygpt.features.fit import fit_sae
from babygpt.features.sae import SAEConfig, TrainProgress
from babygpt.orchestration.plan import encode_corpus
from babygpt.server.worker import THREADS_SIGNAL, limit_memory
from babygpt.store import features as stored_features
from babygpt.store.corpora import run_corpus
from babygpt.store.runs import RunStore
from babygpt.training import devices


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m babygpt.server.sae_worker RUN JOB_FILE", file=sys.stderr)
        return 2
    store, run_id, job_file = RunStore(), args[0], Path(args[1])
    limit_memory("cpu")
    stop, changed = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(THREADS_SIGNAL, lambda *_: changed.set())
    job = stored_features.read_job(job_file)
    # 'running' only once the handlers are in place (the server signals only then), and the share read after it
    stored_features.update_job(job_file, state="running", stage="loading the run")
    devices.configure_threads(_threads(job_file))
    try:
        loaded = store.load(run_id)
        version = store.weights_version(loaded.info.id)
        config = SAEConfig.from_dict(job["config"])
        ids = encode_corpus(run_corpus(store, loaded.info), loaded.tokenizer)

        def progress(p: TrainProgress) -> None:
            if changed.is_set():  # the scheduler's new share, applied between steps
                changed.clear()
                devices.configure_threads(_threads(job_file))
            stored_features.update_job(job_file, step=p.step, steps=p.steps, nmse=p.loss, dead=p.dead,
                                       elapsed_s=p.elapsed_s)

        fitted = fit_sae(loaded.model, ids, config, tokens=int(job["tokens"]), on_step=progress,
                         should_stop=stop.is_set, on_stage=lambda stage: stored_features.update_job(job_file, stage=stage))
        stored_features.save(store, loaded.info.id, fitted.sae, fitted.figures, fitted.browse_windows, fitted.tokens,
                             fitted.elapsed_s, fitted.stopped, version)
    except (BabyGPTError, MemoryError) as exc:
        message = str(exc) if isinstance(exc, BabyGPTError) else "It ran out of memory; read fewer tokens."
        stored_features.update_job(job_file, state="failed", message=message, ended_at=time.time())
        print(f"error: {message}", file=sys.stderr)
        return 2
    stored_features.update_job(job_file, state="stopped" if fitted.stopped else "done", stage="",
                               ended_at=time.time())
    return 0


def _threads(job_file: Path) -> int:
    """The share the scheduler wrote for this job (``babygpt.server.sae_jobs`` writes it before each signal)."""
    try:
        return max(1, int((job_file.parent / "threads").read_text()))
    except (OSError, ValueError):
        return 1


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    sys.exit(main())
