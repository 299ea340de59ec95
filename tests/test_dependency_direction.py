"""The dependency direction of the package (docs/architecture.md "Dependency direction").

Worker-side modules run in training pods, generation Jobs, the grader and pool worker processes; they must not pull
in Dagster or the study config (whose partitions module imports Dagster). The import graph is read from the source
(every `import` statement, the ones inside functions too: a lazy import is still a dependency, and the circle this
test guards against, config -> generation.backends -> models -> config, was made only of lazy ones), then checked:
no cycle between modules, and no path from a worker module to `dagster`, `valley_assets.config` (with its section
modules `config_study` and `config_execution`) or `valley_assets.partitions`. A fresh interpreter then imports each entry module and looks at `sys.modules`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "valley_assets"

WORKER_PACKAGES = ("training", "generation", "grading", "data", "demo", "science")
WORKER_MODULES = ("valley_assets.model_files", "valley_assets.entrypoint", "valley_assets.records",
                  "valley_assets.storage")
# Modules inside a worker package that run on the Dagster side, never in a worker pod: Dagster definitions (run in
# the code server), and the kubernetes grading backend, which runs in the Dagster run pod of the scoring assets and
# builds and watches its grading Jobs with launch.job_spec, launch.k8s_api and launch.job_watch, as the training
# launcher (launch.kubernetes) does. The grading pods themselves run runner.py and shard_driver.py (standard library
# only, checked below as entry modules).
ASSET_SIDE_IN_WORKER_PACKAGES = {"valley_assets.generation.sensor", "valley_assets.grading.kubernetes_backend"}
FORBIDDEN = ("dagster", "valley_assets.config", "valley_assets.config_study", "valley_assets.config_execution",
             "valley_assets.partitions")
# What the launchers start (`python -m <module>`) and what pool worker processes import.
ENTRY_MODULES = ("valley_assets.training.sft", "valley_assets.generation.run", "valley_assets.grading.cli",
                 "valley_assets.grading.runner", "valley_assets.grading.shard_driver", "valley_assets.data.pool",
                 "valley_assets.data.pool_pass1", "valley_assets.demo.tiny_model", "valley_assets.model_files")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> what it imports (package modules by full name, anything else by its top-level name)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                bases = [alias.name for alias in node.names]
                imported: list[str] = bases
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import sub` imports the submodule when there is one, else a name of `pkg`
                imported = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in imported:
                if target.startswith("valley_assets"):
                    while target not in modules:  # `import valley_assets.x.y` of a name inside a module
                        target = target.rpartition(".")[0]
                    targets.add(target)
                else:
                    targets.add(target.split(".")[0])
        graph[name] = targets - {name}
    return graph


def _with_parents(graph: dict[str, set[str]], module: str) -> set[str]:
    """Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))} & set(graph)


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Everything importing `start` may import, each with the module that imports it (for the error message)."""
    seen = {start: ""}
    stack = [start]
    while stack:
        current = stack.pop()
        for target in graph.get(current, set()) | _with_parents(graph, current):
            if target not in seen:
                seen[target] = current
                stack.append(target)
    return seen


def _chain(seen: dict[str, str], target: str) -> str:
    path = [target]
    while seen[path[-1]]:
        path.append(seen[path[-1]])
    return " -> ".join(reversed(path))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    internal = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(internal[module]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(internal):
        if module not in state and (found := visit(module)):
            return found
    return None


def worker_modules(graph: dict[str, set[str]]) -> list[str]:
    names = [m for m in graph if m in WORKER_MODULES
             or any(m == f"valley_assets.{p}" or m.startswith(f"valley_assets.{p}.") for p in WORKER_PACKAGES)]
    return sorted(set(names) - ASSET_SIDE_IN_WORKER_PACKAGES)


def test_the_package_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_scan_sees_lazy_imports_and_finds_cycles():
    graph = import_graph()
    # a function-level import is an edge (grading.cli imports its backends at module level, sft's trainer lazily)
    assert "trl" in graph["valley_assets.training.sft"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", worker_modules(import_graph()))
def test_worker_modules_reach_neither_dagster_nor_the_study_config(module):
    graph = import_graph()
    seen = reachable(graph, module)
    bad = [target for target in FORBIDDEN if target in seen]
    assert not bad, "; ".join(_chain(seen, target) for target in bad)


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_entry_module_imports_without_dagster_in_a_fresh_interpreter(module):
    code = (f"import sys, json, {module}\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster' "
            f"or m in {FORBIDDEN[1:]!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", f"{module} imported {proc.stdout.strip()}"
