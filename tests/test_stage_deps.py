"""dvc.yaml declares, for every stage, exactly the code that can change its outputs.

Each stage script's imports of our own modules are followed (transitively, function-level imports
included); every module reached must be a dependency of the stage, and no Python file of ours may be
a dependency that the stage never imports (deps as narrow as correctness allows: a change elsewhere
must not rerun it). Modules that cannot change outputs are listed below, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Modules a stage imports that cannot change its data, models or metrics. Keep each reason true.
NOT_OUTPUT_DEPS = {
    "src/humpback/tracking.py": "MLflow runs, tags and lineage only; no stage output is written from it",
    "src/humpback/__init__.py": "the package version string only",
    "src/humpback/data/__init__.py": "empty package marker",
    "src/humpback/models/__init__.py": "empty package marker",
}


def _module_file(name: str) -> Path | None:
    """src/ or pipeline/ file of an importable name of ours; None for third-party modules."""
    parts = name.split(".")
    if parts[0] == "humpback":
        base = ROOT / "src" / Path(*parts)
    elif len(parts) == 1 and (ROOT / "pipeline" / f"{name}.py").is_file():
        base = ROOT / "pipeline" / name
    else:
        return None
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[Path]:
    """Our files that importing ``path`` executes: its imports and their parent packages."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from humpback import tracking` imports the submodule humpback.tracking
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # parents run their __init__ first
                module = _module_file(".".join(parts[:i]))
                if module is not None:
                    found.add(module)
    return found


def code_closure(script: Path) -> set[str]:
    """Every file of ours a stage script runs, as repo-relative paths; stops at NOT_OUTPUT_DEPS."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if str(path.relative_to(ROOT)) in NOT_OUTPUT_DEPS:
            continue
        todo.extend(_imports(path) - seen)
    return {str(p.relative_to(ROOT)) for p in seen} - set(NOT_OUTPUT_DEPS)


def stage_code_problems(stages: dict) -> list[str]:
    """What each stage's deps miss, or hold without need, compared with what its script imports."""
    problems = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        scripts = [t for t in body["cmd"].split() if t.startswith("pipeline/") and t.endswith(".py")]
        assert len(scripts) == 1, f"stage {name}: expected one pipeline script in its cmd"
        needed = code_closure(ROOT / scripts[0])
        declared = {d for d in body.get("deps", []) if isinstance(d, str) and d.endswith(".py")}
        for path in sorted(needed - declared):
            problems.append(f"{name}: runs {path} but does not depend on it")
        for path in sorted(declared - needed):
            problems.append(f"{name}: depends on {path} but never imports it")
    return problems


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_the_code_it_runs():
    assert stage_code_problems(_stages()) == []


def test_config_and_common_are_deps_of_every_stage():
    for name, stage in _stages().items():
        deps = stage.get("do", stage)["deps"]
        assert "src/humpback/config.py" in deps and "pipeline/_common.py" in deps, name


@pytest.mark.parametrize("stage,module", [
    ("augment", "src/humpback/shardmap.py"),
    ("score", "src/humpback/models/choices.py"),
    ("train_m0", "src/humpback/models/loading.py"),
    ("evaluate", "src/humpback/eval_sets.py"),
    ("corpus", "src/humpback/data/raw.py"),
])
def test_the_check_fails_when_a_used_module_is_dropped(stage, module):
    stages = _stages()
    body = stages[stage].get("do", stages[stage])
    body["deps"] = [d for d in body["deps"] if d != module]
    assert f"{stage}: runs {module} but does not depend on it" in stage_code_problems(stages)


def test_the_check_fails_on_a_dependency_the_stage_never_imports():
    stages = _stages()
    stages["seed"]["deps"].append("src/humpback/judges.py")
    assert "seed: depends on src/humpback/judges.py but never imports it" in stage_code_problems(stages)


def test_not_output_deps_stay_what_their_reason_says():
    for rel in ("src/humpback/data/__init__.py", "src/humpback/models/__init__.py"):
        assert not (ROOT / rel).read_text().strip(), f"{rel} is no longer empty: make it a dependency"
    tree = ast.parse((ROOT / "src/humpback/__init__.py").read_text())
    assert all(isinstance(n, (ast.Assign, ast.Expr)) for n in tree.body), "humpback/__init__.py does more than name a version"
    tracking = (ROOT / "src/humpback/tracking.py").read_text()
    assert "write_json" not in tracking and "write_table" not in tracking


@pytest.mark.parametrize("script", ["select_pairs", "scaling", "report", "evaluate"])
def test_stages_without_a_model_do_not_import_the_model_stack(script):
    """Every stage pays its imports (torch alone is 2-3 s on 2 cores): the stages that run no model
    (select@i, a disabled scaling, report, evaluate@reference, evaluate with a remote judge) must not
    load torch or transformers just to start."""
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, 'pipeline'); import {script}; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
