"""The rule between the library's layers, checked on the source: the model, text and training layers never import
the store, the server or the lessons; nothing in the library imports Streamlit or the app's ui package."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIBRARY = ROOT / "babygpt"
LOWER = ("model", "text", "training")  # with config, errors, status, units and shipped at the bottom
UPPER = ("babygpt.store", "babygpt.server", "babygpt.lessons", "babygpt.cli")
BOTTOM = ("config.py", "errors.py", "status.py", "units.py", "shipped.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.name} imports {name}" for path in files for name in sorted(imported_modules(path))
            if name.startswith(forbidden)]


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_the_store_the_server_or_the_lessons(layer):
    files = sorted((LIBRARY / layer).glob("*.py"))
    assert files
    assert violations(files, UPPER) == []


def test_the_bottom_modules_import_only_each_other():
    files = [LIBRARY / name for name in BOTTOM]
    allowed = tuple(f"babygpt.{name[:-3]}" for name in BOTTOM)
    found = [f"{p.name} imports {n}" for p in files for n in imported_modules(p)
             if n.startswith("babygpt") and not n.startswith(allowed)]
    assert found == []


def test_the_library_never_imports_streamlit_or_the_app():
    assert violations(sorted(LIBRARY.rglob("*.py")), ("streamlit", "ui", "views", "app")) == []


def test_the_check_sees_a_planted_violation(tmp_path):
    planted = tmp_path / "bad.py"
    planted.write_text("def f():\n    from babygpt.store.runs import RunStore\n")
    assert violations([planted], UPPER) == ["bad.py imports babygpt.store.runs", "bad.py imports babygpt.store.runs.RunStore"]


def test_only_the_ray_backend_imports_ray():
    """Without BABYGPT_RAY_ADDRESS nothing starts or needs Ray: one module imports it, and only when chosen."""
    files = [p for p in sorted(LIBRARY.rglob("*.py")) if p.name != "ray_backend.py"]
    assert violations(files, ("ray",)) == []
    assert violations([LIBRARY / "server" / "ray_backend.py"], ("ray",))
