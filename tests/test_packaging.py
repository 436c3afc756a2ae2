"""``pip install .`` installs the library and a ``babygpt`` command equal to ``python -m babygpt``."""

import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT


def test_pip_install_gives_the_library_and_its_command(tmp_path):
    source, target = tmp_path / "source", tmp_path / "site"  # a copy: setuptools writes build/ beside the source
    shutil.copytree(ROOT / "babygpt", source / "babygpt", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", source / "data")
    shutil.copy(ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path)
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
