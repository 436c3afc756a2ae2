"""``pip install .`` installs the library and a ``babygpt`` command equal to ``python -m babygpt``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def pip_install(tmp_path) -> Path:
    """``pip install`` of a copy of the package (setuptools writes build/ beside the source) into a folder."""
    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(ROOT / "babygpt", source / "babygpt", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", source / "data")
    shutil.copy(ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path)
    return target


def test_pip_install_gives_the_library_and_its_command(tmp_path):
    target = pip_install(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(target), BABYGPT_HOME=str(tmp_path / "home"))
    listed = subprocess.run([sys.executable, str(target / "bin" / "babygpt"), "runs", "list"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "no runs in" in listed.stdout
    # the shipped data travels with the package: every corpus loads and gpt2 tokenizes with an empty tiktoken cache
    env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "empty-tiktoken-cache")
    found = subprocess.run([sys.executable, "-c", "import babygpt, babygpt.text.datasets as d, babygpt.shipped as s; "
                            "from babygpt.text.tokenizers import gpt2_encoding; "
                            "print(babygpt.__file__); print(s.data_dir()); "
                            "print([len(d.load_corpus(n).text) for n in sorted(d.registry())]); "
                            "print(gpt2_encoding().encode('hello world'))"],
                           env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert found.stdout.splitlines() == [str(target / "babygpt" / "__init__.py"), str(target / "babygpt" / "_data"),
                                         "[465126, 1115394]", "[31373, 995]"], found.stderr


def test_an_installed_server_trains_in_a_worker_from_any_folder(tmp_path):
    """From an install and another current directory, the local backend's worker process imports the installed
    code (``code_root`` is the install's site folder) and trains a run to its end."""
    target = pip_install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(BABYGPT_HOME=str(tmp_path / "home"), BABYGPT_CPU_BFLOAT16="off")
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1])\n"
        "from babygpt.config import TrainConfig\n"
        "from babygpt.orchestration.plan import plan_training\n"
        "from babygpt.server.scheduler import Scheduler\n"
        "from babygpt.server.settings import SchedulerSettings\n"
        "from babygpt.shipped import code_root\n"
        "from babygpt.store.runs import RunStore\n"
        "from babygpt.text.datasets import default_dataset, load_corpus\n"
        "print(code_root())\n"
        "plan = plan_training(load_corpus(default_dataset()), 'char', 'gpt', TrainConfig(max_iters=20, eval_interval=10,"
        " eval_iters=2, batch_size=4, device='cpu'), n_layer=1, n_head=2, n_embd=16, block_size=16)\n"
        "scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1))\n"
        "info = scheduler.submit(None, plan)\n"
        "deadline = time.time() + 120\n"
        "while not scheduler.store.get(info.id).status.ended and time.time() < deadline: time.sleep(0.3)\n"
        "print(scheduler.store.get(info.id).status)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], env=env, cwd=elsewhere, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [str(target), "done"], done.stdout + done.stderr[-2000:]
