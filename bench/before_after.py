"""Training and sampling speed of two commits measured in one run, alternating, on this machine.

    python -m bench.before_after --before 32dfddd [--after HEAD] [--rounds 3]

Each commit is checked out in a temporary git worktree and runs its own ``bench.train_throughput`` (float32, no
reference) and ``bench.sample_throughput``; the rounds alternate before/after so a change in the machine's load
falls on both. The JSON gives each commit's median and range over the rounds, and after ÷ before: a ratio inside
the before's own range is no change.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import emit, environment

ROOT = Path(__file__).resolve().parent.parent
MEASURES = {  # name: (module and arguments, the JSON path to the figure)
    "train_tokens_per_sec": (["bench.train_throughput", "--dtype", "float32", "--no-reference", "--rounds", "3"],
                             ("float32", "tokens_per_sec")),
    "sample_tokens_per_sec": (["bench.sample_throughput", "--tokens", "300", "--repeats", "3"],
                              ("kv_cache", "tokens_per_sec")),
}


def _figure(document: dict, path: tuple[str, ...]) -> float:
    for key in path:
        document = document[key]
    return float(document)


def _measure(tree: Path, module_args: list[str], path: tuple[str, ...]) -> float:
    out = subprocess.run([sys.executable, "-m", *module_args], cwd=tree, capture_output=True, text=True, check=True)
    return _figure(json.loads(out.stdout[out.stdout.index("{"):]), path)


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1),
            "rounds": [round(v, 1) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="the commit measured as before")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            trees[label] = Path(tmp) / label
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[label]), rev], cwd=ROOT, check=True,
                           capture_output=True)
        try:
            values = {name: {"before": [], "after": []} for name in MEASURES}
            for _ in range(args.rounds):
                for name, (module_args, path) in MEASURES.items():
                    for label, tree in trees.items():
                        values[name][label].append(_measure(tree, module_args, path))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    result = {"benchmark": "before_after", "before": args.before, "after": args.after, "env": environment()}
    for name, by in values.items():
        before, after = _summary(by["before"]), _summary(by["after"])
        result[name] = {"before": before, "after": after, "ratio": round(after["median"] / before["median"], 3),
                        "within_before_range": before["min"] <= after["median"] <= before["max"]}
    emit(result)


if __name__ == "__main__":
    main()
