"""Evaluation prompt sets: the demo set, AlpacaEval (hub or a local copy), or any local file.

Every set becomes a list of ``{"index", "instruction", "dataset", "reference"}`` rows, where
``reference`` is the set's own reference output (AlpacaEval: text-davinci-003's answer) or None.
When a set has no references, evaluation compares against a pipeline model (``evaluate.reference``).
"""

from __future__ import annotations

import json
from pathlib import Path

from humpback.core.files import read_records
from humpback.evaluate.config import EvalSetConfig


class EvalSetError(ValueError):
    """The eval set is unusable; the message names the file and row."""


def _alpaca_eval_file(cfg: EvalSetConfig) -> Path:
    """The file from the hub dataset when ``hub_dataset`` is set, else the local copy at ``path``.

    The hub repo's loading script no longer runs under current ``datasets``, so we fetch its JSON
    file directly (the same file the script used): a list of instruction/output/generator/dataset.
    """
    if not cfg.hub_dataset:
        return Path(cfg.path)
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=cfg.hub_dataset, filename=cfg.hub_file, repo_type="dataset"))


def load_eval_set(cfg: EvalSetConfig) -> list[dict]:
    path = _alpaca_eval_file(cfg) if cfg.source == "alpaca_eval" else Path(cfg.path)
    if not path.is_file():
        raise EvalSetError(f"evaluate.set.path: '{path}' is not a file")
    rows, seen = [], set()
    for where, row in read_records(path, EvalSetError, "eval set"):
        if not isinstance(row, dict):
            raise EvalSetError(f"{where}: expected an object with '{cfg.instruction_column}'")
        instruction = row.get(cfg.instruction_column)
        if not isinstance(instruction, str) or not instruction.strip():
            raise EvalSetError(f"{where}: missing or empty '{cfg.instruction_column}'; columns present: "
                               f"{sorted(row)}. Set evaluate.set.instruction_column to match the file.")
        reference = row.get(cfg.reference_column) if cfg.reference_column else None
        if reference is not None and not isinstance(reference, str):
            raise EvalSetError(f"{where}: '{cfg.reference_column}' is not text")
        if instruction in seen:
            raise EvalSetError(f"{where}: the instruction appears twice in the set ({instruction[:60]!r})")
        seen.add(instruction)
        rows.append({"index": len(rows), "instruction": instruction,
                     "dataset": str(row.get("dataset") or row.get("category") or path.stem),
                     "reference": reference, "reference_generator": row.get("generator")})
        if cfg.max_prompts and len(rows) == cfg.max_prompts:
            break
    if not rows:
        raise EvalSetError(f"{path}: no prompts found")
    with_ref = sum(r["reference"] is not None for r in rows)
    if 0 < with_ref < len(rows):
        raise EvalSetError(f"{path}: {len(rows) - with_ref} of {len(rows)} prompts have no "
                           f"'{cfg.reference_column}'; a set has reference outputs for all prompts or none")
    return rows


def has_references(rows: list[dict]) -> bool:
    return bool(rows) and rows[0]["reference"] is not None


def model_outputs(rows: list[dict], outputs: list[str], generator: str) -> list[dict]:
    """AlpacaEval's model-outputs format, so ``alpaca_eval --model_outputs`` reads it unchanged."""
    return [{"instruction": r["instruction"], "output": o, "generator": generator, "dataset": r["dataset"]}
            for r, o in zip(rows, outputs)]


def reference_outputs(rows: list[dict]) -> list[dict]:
    """The set's own references in the model-outputs format (empty when the set has none)."""
    if not has_references(rows):
        return []
    generator = rows[0].get("reference_generator") or "dataset"
    return model_outputs(rows, [r["reference"] for r in rows], str(generator))


def read_difficulty(path: str | Path, rows: list[dict]) -> dict[int, float]:
    """Per-prompt difficulty for the LC GLM: a CSV of prompt index and difficulty with a header row
    (AlpacaEval's instruction_difficulty.csv), covering every prompt of the set."""
    import csv

    path = Path(path)
    values = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for lineno, row in enumerate(reader, 2):
                if not row:
                    continue
                try:
                    values[int(row[0])] = float(row[1])
                except (ValueError, IndexError):
                    raise EvalSetError(f"{path}:{lineno}: expected 'index,difficulty' numbers, got {row}") from None
    except OSError as exc:
        raise EvalSetError(f"evaluate.instruction_difficulty: cannot read '{path}' ({exc.strerror})") from None
    missing = [r["index"] for r in rows if r["index"] not in values]
    if missing:
        raise EvalSetError(f"{path}: no difficulty for {len(missing)} prompts (first index {missing[0]})")
    return values


def read_prompts(set_dir: str | Path) -> list[dict]:
    """The eval set the eval_set stage wrote (data/eval/set/prompts.json): index, instruction,
    dataset, reference output."""
    path = Path(set_dir) / "prompts.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalSetError(f"{path}: cannot read the eval set ({exc}); run `dvc repro eval_set`") from None


def read_outputs(path: str | Path, rows: list[dict]) -> list[dict]:
    """Model outputs aligned with the set: one per prompt, same instructions, same order."""
    path = Path(path)
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalSetError(f"{path}: cannot read model outputs ({exc})") from None
    if not outputs:
        raise EvalSetError(f"{path}: no outputs (for evaluate.reference: dataset the set needs reference outputs)")
    if [o.get("instruction") for o in outputs] != [r["instruction"] for r in rows]:
        raise EvalSetError(f"{path}: its instructions do not match the eval set; rerun its answer stage")
    return outputs
