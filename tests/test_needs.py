"""A test's outside needs skip on a developer's machine and fail under CI=true (``tests/needs.py``): the
independent check of the Hugging Face bridge cannot pass in CI by not running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.needs import required_module


def test_a_missing_module_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but the no_such_package_here package is missing"):
        required_module("no_such_package_here")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no_such_package_here package is not installed"):
        required_module("no_such_package_here")
    assert required_module("json").dumps([1]) == "[1]"


def _collect_without_transformers(tmp_path, ci: str) -> subprocess.CompletedProcess:
    """Collect the bridge's independent check in a Python where ``import transformers`` fails as if not installed."""
    hidden = tmp_path / "hide" / "transformers"
    hidden.mkdir(parents=True, exist_ok=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'transformers'\", "
                                        "name='transformers')\n", encoding="utf-8")
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(hidden.parent), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           "tests/test_huggingface.py", "tests/test_bpe_huggingface.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_hugging_face_check_fails_in_ci_when_transformers_is_missing(tmp_path):
    done = _collect_without_transformers(tmp_path, "true")
    assert done.returncode != 0 and "CI=true but the transformers package is missing" in done.stdout, done.stdout[-2000:]
    done = _collect_without_transformers(tmp_path, "")
    assert done.returncode in (0, 5), done.stdout[-2000:]  # skipped: nothing collected is not a failure
    assert "transformers package is not installed" in done.stdout or "skipped" in done.stdout
