"""A class on a Ray cluster against the same class on one server: the app's default model, one job per node at once,
through the scheduler with each backend, rounds alternating.

The cluster is simulated on this machine (``ray.cluster_utils.Cluster``: a head that holds no jobs, like the
machine that runs the app, and ``--nodes`` nodes of one CPU each, real raylets); the local side is the same number
of worker processes with one thread each. Reported per job: training tokens/s (median of its logged steps), the
seconds from Start to its first logged step, the wall time of the whole class, and the share of a core the
server process spent per job (applying what the jobs send back, or reading the workers' rows).

    python -m bench.cluster [--nodes 2] [--steps 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from ray.cluster_utils import Cluster

from babygpt.config import DEFAULT_PRESET, INTERACTIVE_TRAIN, TrainConfig, tokens_per_step
from babygpt.orchestration.plan import TrainingPlan, plan_training
from babygpt.server.local import LocalBackend
from babygpt.server.ray_backend import ClusterSettings, RayBackend
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.store.runs import RunStore
from bench.class_run import train_class
from bench.common import emit, environment, shakespeare

NODE_MEMORY = dict(object_store_memory=80 * 2**20)


def one_class(backend_name: str, plan: TrainingPlan, jobs: int, cluster: Cluster | None) -> dict:
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(home)
        settings = SchedulerSettings(max_jobs=jobs, cores=jobs, threads_per_job=1)
        backend = (RayBackend(store, settings, ClusterSettings(cluster.address)) if backend_name == "ray"
                   else LocalBackend(settings))
        return train_class(Scheduler(store, settings, backend), store, plan, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    train = TrainConfig(**{**INTERACTIVE_TRAIN, "max_iters": args.steps, "eval_interval": max(1, args.steps // 4)})
    plan = plan_training(shakespeare(), "char", DEFAULT_PRESET, train)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, include_dashboard=False, **NODE_MEMORY))
    try:
        for _ in range(args.nodes):
            cluster.add_node(num_cpus=1, **NODE_MEMORY)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        results: dict[str, list[dict]] = {"local": [], "ray": []}
        for _ in range(args.rounds):  # alternating, so the machine's drift hits both alike
            for name in ("local", "ray"):
                results[name].append(one_class(name, plan, args.nodes, cluster))
    finally:
        ray.shutdown()
        cluster.shutdown()
    best = {name: max(rounds, key=lambda r: r["tokens_per_sec_total"]) for name, rounds in results.items()}
    emit({"benchmark": "cluster", "env": environment(), "nodes": args.nodes, "cpus_per_node": 1,
          "steps": args.steps, "tokens_per_step": tokens_per_step(plan.model_config, plan.train_config),
          "model": {k: getattr(plan.model_config, k) for k in ("n_layer", "n_head", "n_embd", "block_size")},
          "rounds": results,
          "ray_vs_local_total": round(best["ray"]["tokens_per_sec_total"] / best["local"]["tokens_per_sec_total"], 3)})


if __name__ == "__main__":
    main()
