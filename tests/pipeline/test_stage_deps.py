"""dvc.yaml declares, for every stage, exactly the code that can change its outputs.

A stage depends on its script, its step's package, ``core/`` and, where it generates with a model,
``models/`` as folders; anything else it imports (another step's config section, a prompt builder)
as single files. Each stage script's imports of our own modules are followed (transitively,
function-level imports included): every module reached must lie in a declared folder or be a
declared file, every declared file must be imported and every declared folder must hold a module
the stage imports. Modules that cannot change outputs are listed below, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Modules a stage imports that cannot change its data, models or metrics. Keep each reason true.
NOT_OUTPUT_DEPS = {
    "src/humpback/tracking": "MLflow runs, tags and lineage only; no stage output is written from it",
    "src/humpback/params.py": "the whole-file check every stage runs first: it can fail a stage, but the stage "
                              "reads its values through its own sections' models (core.config.load_sections)",
    "src/humpback/__init__.py": "the package version string only",
}


def _not_output_dep(rel: str) -> bool:
    if rel.endswith("__init__.py") and rel != "src/humpback/__init__.py" and not (ROOT / rel).read_text().strip():
        return True  # an empty package marker
    return any(rel == k or rel.startswith(k + "/") for k in NOT_OUTPUT_DEPS)


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
        if _not_output_dep(str(path.relative_to(ROOT))):
            continue
        todo.extend(_imports(path) - seen)
    return {rel for p in seen if not _not_output_dep(rel := str(p.relative_to(ROOT)))}


def _code_deps(body: dict) -> list[str]:
    return [d for d in body.get("deps", []) if isinstance(d, str) and d.startswith(("src/", "pipeline/"))
            and (d.endswith(".py") or (ROOT / d).is_dir())]


def covers(dep: str, path: str) -> bool:
    """Does the dependency ``dep`` (a file or a folder) hold ``path``, as DVC sees it?"""
    return path == dep or path.startswith(dep.rstrip("/") + "/")


def stage_code_problems(stages: dict) -> list[str]:
    """What each stage's deps miss, or hold without need, compared with what its script imports."""
    problems = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        scripts = [t for t in body["cmd"].split() if t.startswith("pipeline/") and t.endswith(".py")]
        assert len(scripts) == 1, f"stage {name}: expected one pipeline script in its cmd"
        needed = code_closure(ROOT / scripts[0])
        declared = _code_deps(body)
        for path in sorted(needed):
            if not any(covers(d, path) for d in declared):
                problems.append(f"{name}: runs {path} but does not depend on it")
        for dep in declared:
            if not any(covers(dep, path) for path in needed):
                problems.append(f"{name}: depends on {dep} but never imports it")
    return problems


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_the_code_it_runs():
    assert stage_code_problems(_stages()) == []


def test_core_and_common_are_deps_of_every_stage():
    for name, stage in _stages().items():
        deps = stage.get("do", stage)["deps"]
        assert "src/humpback/core" in deps and "pipeline/_common.py" in deps, name


@pytest.mark.parametrize("stage,dep,module", [
    ("augment", "src/humpback/core", "src/humpback/core/units.py"),
    ("score", "src/humpback/models", "src/humpback/models/encoding.py"),
    ("train_m0", "src/humpback/models/loading.py", "src/humpback/models/loading.py"),
    ("evaluate", "src/humpback/evaluate", "src/humpback/evaluate/sets.py"),
    ("corpus", "src/humpback/data", "src/humpback/data/steps.py"),
])
def test_the_check_fails_when_a_used_module_is_dropped(stage, dep, module):
    stages = _stages()
    body = stages[stage].get("do", stages[stage])
    body["deps"] = [d for d in body["deps"] if d != dep]
    assert f"{stage}: runs {module} but does not depend on it" in stage_code_problems(stages)


def test_the_check_fails_on_a_dependency_the_stage_never_imports():
    stages = _stages()
    stages["seed"]["deps"] += ["src/humpback/evaluate/judges/remote.py", "src/humpback/curate"]
    problems = stage_code_problems(stages)
    assert "seed: depends on src/humpback/evaluate/judges/remote.py but never imports it" in problems
    assert "seed: depends on src/humpback/curate but never imports it" in problems


def _stages_holding(path: str) -> set[str]:
    return {name for name, stage in _stages().items()
            if any(covers(d, path) for d in stage.get("do", stage).get("deps", []) if isinstance(d, str))}


@pytest.mark.parametrize("edited,allowed", [
    # the win-rate maths: only the judged stages and the report, never the answers
    ("src/humpback/evaluate/winrate.py", {"evaluate", "scale_evaluate"}),
    # a judge: not the answers
    ("src/humpback/evaluate/judges/remote.py", {"evaluate", "scale_evaluate"}),
    ("src/humpback/evaluate/judges/local.py", {"evaluate", "scale_evaluate"}),
    # the train section's code: the trainings alone (then what their models feed)
    ("src/humpback/train/config.py", {"train_backward", "train_m0", "train", "scale_train"}),
    ("src/humpback/train/recipe.py", {"train_backward", "train_m0", "train", "scale_train"}),
    # the curator check: its package's stages (score@i, select@i), no training, generation or judging
    ("src/humpback/curate/check.py", {"score", "select"}),
    ("README.md", set()),
])
def test_an_edit_reruns_only_the_stages_of_its_step(edited, allowed):
    assert _stages_holding(edited) <= allowed, _stages_holding(edited) - allowed


def test_not_output_deps_stay_what_their_reason_says():
    tree = ast.parse((ROOT / "src/humpback/__init__.py").read_text())
    assert all(isinstance(n, (ast.Assign, ast.Expr)) for n in tree.body), "humpback/__init__.py does more than name a version"
    for path in (ROOT / "src/humpback/tracking").glob("*.py"):
        text = path.read_text()
        assert "write_json" not in text and "write_table" not in text, path  # (atomic_write: mlflow.db alone)
    # params.py only checks: in load_params, its parse_config's result is thrown away (a bare call)
    load_params = next(n for n in ast.walk(ast.parse((ROOT / "pipeline/_common.py").read_text()))
                       if isinstance(n, ast.FunctionDef) and n.name == "load_params")
    calls = [n for n in ast.walk(load_params) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "parse_config"]
    bare = [n.value for n in ast.walk(load_params) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert calls and all(c in bare for c in calls), "a stage must not read values through humpback.params"


@pytest.mark.parametrize("script", ["select_pairs", "scaling", "report", "evaluate", "rewrite"])
def test_stages_without_a_model_do_not_import_the_model_stack(script):
    """Every stage pays its imports (torch alone is 2-3 s on 2 cores): the stages that run no model
    (select@i, a disabled scaling or rewrite@i, report, evaluate@reference, evaluate with a remote judge) must not
    load torch or transformers just to start."""
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, 'pipeline'); import {script}; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
