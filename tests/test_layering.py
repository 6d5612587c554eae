"""Imports flow downward: nothing outside site/ touches the site's storage, renderers never plan."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_site_the_state_store_and_the_parse_cache_use_sqlite() -> None:
    users = {p.relative_to(PACKAGE).as_posix() for p in modules() if "sqlite3" in imports(p)}
    embedded = {u for u in users if u.startswith("site/embedded/")}
    assert users - embedded <= {"state/sqlite.py", "state/leases.py", "source/cache.py", "storage.py",
                                "site/adminservice/cache.py"}


def test_nothing_outside_the_site_package_names_an_implementation() -> None:
    """The CLI, controller and workspace open a site with ``open_site`` and use the ``Site`` protocol."""
    for path in modules():
        if path.relative_to(PACKAGE).parts[0] == "site":
            continue
        assert not any(m.startswith("reconciler.site.embedded") for m in imports(path)), path
        assert "EmbeddedSite" not in path.read_text(), path


def test_planner_and_differ_never_mutate_the_site() -> None:
    for folder in ("plan", "diff"):
        for path in (PACKAGE / folder).glob("*.py"):
            assert "reconciler.site.embedded" not in imports(path), path
            assert not any(m.startswith("reconciler.apply") for m in imports(path)), path


def test_renderers_do_not_compute_plans() -> None:
    for path in (PACKAGE / "render").glob("*.py"):
        found = imports(path)
        assert not any(m.startswith(("reconciler.plan.planner", "reconciler.apply", "reconciler.site.embedded"))
                       for m in found), path


def test_models_do_not_depend_on_anything_above_them() -> None:
    for path in (PACKAGE / "models").glob("*.py"):
        for module in imports(path):
            if module.startswith("reconciler."):
                assert module.startswith(("reconciler.models", "reconciler.errors")), (path, module)


def _codec_imports(path: Path) -> set[str]:
    """The ``reconciler.tsxml`` modules a codec module imports, ``from reconciler.tsxml import x`` included."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "reconciler.tsxml":
            out.update(f"reconciler.tsxml.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reconciler.tsxml."):
            out.add(node.module or "")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("reconciler.tsxml."))
    return out


def test_the_task_sequence_codec_has_no_import_cycle() -> None:
    graph = {f"reconciler.tsxml.{p.stem}": _codec_imports(p) for p in (PACKAGE / "tsxml").glob("*.py")
             if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            cycle = (*path[path.index(module):], module)
            raise AssertionError("import cycle: " + " -> ".join(m.rsplit(".", 1)[1] for m in cycle))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_task_sequence_codec_depends_only_on_models_and_errors() -> None:
    allowed = ("reconciler.tsxml", "reconciler.models", "reconciler.errors", "reconciler.secrets")
    for path in (PACKAGE / "tsxml").glob("*.py"):
        for module in imports(path):
            if module.startswith("reconciler"):
                assert module.startswith(allowed), (path, module)


def test_the_planner_never_compares_fields_itself() -> None:
    """Comparing is the diff stage's job (diff/); the planner turns its changes into actions."""
    for path in (PACKAGE / "plan").glob("*.py"):
        found = imports(path)
        assert "deepdiff" not in found and "reconciler.diff.compare" not in found, path
        assert "reconciler.diff.steps" not in found, path  # step trees are compared by diff/tasksequence.py
