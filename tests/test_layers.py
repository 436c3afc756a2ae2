"""The rule between the library's layers, stated as import-linter contracts in pyproject.toml and checked here on
the source (CI runs ``lint-imports`` too): every import points down, the server's backend interface is a leaf, the
library never imports Streamlit or the app, only the Ray backend imports Ray; and the model reads no environment."""

import ast
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())"]


def lint_imports(folder) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT_IMPORTS, "--no-cache"], cwd=folder, capture_output=True, text=True, timeout=120)


def test_every_layer_contract_is_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "KEPT" in done.stdout


@pytest.mark.parametrize(("module", "planted", "contract"), [
    ("babygpt/lessons/race.py", "from babygpt.store.runs import RunStore", "The library's layers point down"),
    ("babygpt/store/runs.py", "from babygpt.orchestration import plan", "The library's layers point down"),
    ("babygpt/store/records.py", "from babygpt.lessons import counterfactuals", "The library's layers point down"),
    ("babygpt/server/backend.py", "from babygpt.server import local", "the interface a leaf"),
    ("babygpt/model/gpt.py", "from babygpt.model import decode", "the speed-only decoder"),
    ("babygpt/interpret/hooked.py", "from babygpt.interpret import inside", "the one pass with hooks"),
    ("babygpt/training/trainer.py", "import streamlit", "never imports Streamlit"),
])
def test_a_planted_upward_import_breaks_its_contract(tmp_path, module, planted, contract):
    """The check can fail: a copy of the library with one import pointing the wrong way is refused, naming it."""
    for name in ("babygpt", "ui"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {planted}\n", encoding="utf-8")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    broken = [line for line in done.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), done.stdout[-3000:]


def test_the_model_reads_no_environment():
    """Sizes and limits are arithmetic on a config; what a server allows comes from babygpt.server.settings."""
    found = []
    for path in sorted((ROOT / "babygpt" / "model").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                found.append(f"{path.name}:{node.lineno} os.{node.attr}")
    assert found == []


def test_every_package_names_its_modules():
    """A package's docstring is its map: each of its modules is named there (as ``module``)."""
    import importlib

    missing = []
    for package in sorted(p for p in (ROOT / "babygpt").iterdir() if (p / "__init__.py").is_file()):
        doc = importlib.import_module(f"babygpt.{package.name}").__doc__ or ""
        missing += [f"babygpt.{package.name}.{m.stem}" for m in sorted(package.glob("*.py"))
                    if m.stem != "__init__" and f"``{m.stem}``" not in doc]
    assert missing == []
