"""`humpback export dataset`: a curated set as a Hugging Face dataset, with its card.

The folder holds ``data/train-00000-of-00001.parquet`` (instruction, response, score,
expected_score, url, id) and a ``README.md`` dataset card whose YAML metadata ``datasets`` and the
Hub read: the split's file, size category, task, and under ``humpback`` what made the data: the
curation recipe (scorer, threshold, iteration, curator), the licences and sources of the documents
the responses were cut from (joined from the raw node by URL), the DVC md5 of every model and data
node involved (from dvc.lock), the git commit, the curator check's ROC AUC and the well-formed
share of the instructions. So the set can leave
the repository the way the field shares data, and anyone can trace it back to the pipeline run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import click

from humpback.core.files import atomic_write


@click.group("export")
def export_group() -> None:
    """Write pipeline results in other tools' formats."""


@export_group.command("alpaca-eval")
@click.argument("model")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file. Default: alpaca_eval/<model>/model_outputs.json")
@click.option("--annotations/--no-annotations", default=True, show_default=True,
              help="Also copy the judge's annotations (AlpacaEval format) beside it.")
def export_alpaca_eval(model, out, annotations):
    """Export MODEL's answers to the eval set in AlpacaEval's model-outputs format, ready for
    `alpaca_eval evaluate --model_outputs FILE` (the answers come from `dvc repro answer@MODEL`).

    \b
    Example:
      humpback export alpaca-eval m2
      alpaca_eval evaluate --model_outputs alpaca_eval/m2/model_outputs.json --annotators_config weighted_alpaca_eval_gpt4_turbo
    """
    import json
    import shutil

    from humpback.cli.tables import NotAHumpbackDataset, load

    answers = Path("data/eval/answers") / f"{model}.json"
    if not answers.is_file():
        raise click.ClickException(f"no answers for '{model}' at {answers}: add it to evaluate.models and run "
                                   f"`dvc repro answer@{model}`")
    try:
        kind, rows = load(answers)
    except NotAHumpbackDataset as exc:
        raise click.ClickException(str(exc)) from None
    if kind != "model_outputs":
        raise click.ClickException(f"{answers}: not AlpacaEval model outputs ({kind})")
    out_path = Path(out or f"alpaca_eval/{model}/model_outputs.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{out_path}: {len(rows)} outputs of {model}")
    judged = Path("data/eval/judged") / model / "annotations.json"
    if annotations and judged.is_file():
        shutil.copyfile(judged, out_path.with_name("annotations.json"))
        click.echo(f"{out_path.with_name('annotations.json')}: the judge's annotations")


@export_group.command("dataset")
@click.argument("iteration", type=int)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--push-to-hub", "repo_id", default=None, metavar="REPO",
              help="Also upload the folder as the dataset repo REPO (user/name); token from $HF_TOKEN only.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
def export_dataset_cmd(iteration, out, repo_id, private):
    """Export ITERATION's curated set (data/curated/iter<ITERATION>) as a Hugging Face dataset in OUT:
    Parquet plus a README.md dataset card whose metadata holds the curation recipe and threshold,
    the licences and sources of the documents the responses came from, the DVC md5 of the models
    and data behind it, the git commit and the curator check's AUC. `datasets.load_dataset(OUT)`
    reads it.

    \b
    Example:
      humpback export dataset 2 exports/iter2
      HF_TOKEN=hf_... humpback export dataset 2 exports/iter2 --push-to-hub me/humpback-iter2
    """

    try:
        card = export_dataset(iteration, out, repo_id=repo_id)
        meta = card.data.to_dict()["humpback"]
        click.echo(f"{out}: {meta['pairs']} pairs of iteration {iteration} (Parquet + README.md dataset card; "
                   f"source licences: {', '.join(meta['licenses']) or 'none'})")
        if repo_id:
            click.echo(f"uploaded: {push_to_hub(out, repo_id, private)}")
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None


PARQUET_NAME = "train-00000-of-00001.parquet"


COLUMNS = ("instruction", "response", "score", "expected_score", "url", "id")


class ExportError(RuntimeError):
    """What is missing for the export, and which stage makes it."""


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def provenance(urls: list[str | None], raw_dir: Path) -> dict:
    """Licences and sources of the documents behind ``urls``, counted per pair (``unknown`` where
    the raw node has no document of that URL or states no licence)."""
    from humpback.core.shards import read_table

    docs = {}
    if raw_dir.is_dir() and list(raw_dir.glob("*.parquet")):
        for row in read_table(raw_dir, ["url", "source", "license"]).to_pylist():
            docs.setdefault(row["url"], row)
    licences, sources = Counter(), Counter()
    for url in urls:
        doc = docs.get(url)
        licences[(doc or {}).get("license") or "unknown"] += 1
        sources[(doc or {}).get("source") or "unknown"] += 1
    return {"licenses": dict(licences.most_common()), "sources": dict(sources.most_common())}


def dataset_metadata(iteration: int, root: Path, rows: int, urls: list[str | None]) -> dict:
    """The card's ``humpback`` block: recipe, provenance, DVC hashes, commit, curator AUC."""
    from humpback.core.config import ConfigError
    from humpback.params import load_config
    from humpback.tracking.lineage import dvc_out_hashes, git_commit

    try:
        cfg = load_config(root / "params.yaml")
    except ConfigError as exc:
        raise ExportError(f"the recipe cannot be read: {exc}") from None
    if iteration not in cfg.iterations:
        raise ExportError(f"iteration {iteration} is not in params.yaml's iterations {sorted(cfg.iterations)}")
    curator = cfg.iterations[iteration].curator
    selected = _read_json(root / f"metrics/curate/iter{iteration}.json")
    scored = _read_json(root / f"metrics/score/iter{iteration}.json")
    nodes = ["data/raw", "data/corpus", "data/candidates", f"data/curated/iter{iteration}", "models/base",
             "models/backward", f"models/{curator}"]
    hashes = dvc_out_hashes(nodes, root / "dvc.lock")
    c = cfg.curate
    return {
        "iteration": iteration,
        "pairs": rows,
        "recipe": {"method": "instruction backtranslation (Li et al., 2023)", "scorer": c.scorer,
                   "threshold": c.threshold, "use_expected_score": c.use_expected_score, "curator": curator,
                   "candidates": selected.get("pairs"), "kept_share": selected.get("kept_share")},
        "curator_auc": (scored.get("curator_check") or {}).get("auc"),
        # the share of kept pairs whose instruction reads as a request (augment/form.py)
        "well_formed": selected.get("well_formed"),
        **provenance(urls, root / "data/raw"),
        "dvc_md5": {node: hashes.get(node) for node in nodes},
        "git_commit": git_commit(root),
    }


CARD = """
# {title}

Instruction-response pairs made by [humpback](https://arxiv.org/abs/2308.06259)'s instruction
backtranslation: a backward model wrote an instruction for each segment of unlabelled text, and the
curator model `{curator}` rated each pair; those scoring at least {threshold} ({scorer} scorer) are
kept. The responses are human-written text; the instructions are generated.

| | |
| --- | --- |
| pairs | {pairs} (of {candidates} candidates) |
| curation | iteration {iteration}, curator `{curator}`, threshold {threshold} |
| curator check (ROC AUC, real against broken pairs; 0.5 = chance) | {auc} |
| instructions that read as a request (well-formed share) | {well_formed} |
| sources | {sources} |
| licences of the source documents | {licenses} |
| git commit | `{commit}` |

The DVC md5 of every data node and model behind the set is in the card's metadata (`humpback.dvc_md5`).

## Use and limits

Each response keeps the licence of the document it was cut from (above, per pair); check them before
you redistribute. Generated instructions can be wrong or ask for something the response does not
give; the curator's score says how well its model thought a pair fits, not that it is correct.

```python
from datasets import load_dataset
pairs = load_dataset("{load_from}", split="train")
```
"""


def export_dataset(iteration: int, out: str | Path, root: str | Path = ".", repo_id: str | None = None):
    """Write the curated set of ``iteration`` as a Hugging Face dataset folder ``out``; returns the
    card. Raises :class:`ExportError` naming what is missing."""
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard, DatasetCardData

    root, out = Path(root), Path(out)
    curated = root / f"data/curated/iter{iteration}/curated.parquet"
    if not curated.is_file():
        raise ExportError(f"no curated set at {curated}: run `dvc repro select@{iteration}` (iterations: "
                          "see `iterations` in params.yaml)")
    table = pq.read_table(curated)
    missing = [c for c in ("instruction", "response") if c not in table.column_names]
    if missing:
        raise ExportError(f"{curated}: no column {missing}; not a curated set of this pipeline")
    table = table.select([c for c in COLUMNS if c in table.column_names])
    urls = table["url"].to_pylist() if "url" in table.column_names else [None] * table.num_rows
    meta = dataset_metadata(iteration, root, table.num_rows, urls)
    licenses = [name for name in meta["licenses"] if name != "unknown"]
    data = DatasetCardData(
        license="other" if len(licenses) != 1 else licenses[0].lower(), language=["en"],
        task_categories=["text-generation"], size_categories=_size_category(table.num_rows),
        tags=["instruction-backtranslation", "humpback", "synthetic-instructions"],
        pretty_name=f"humpback curated pairs, iteration {iteration}",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"data/{PARQUET_NAME}"}]}],
        humpback=meta)
    r = meta["recipe"]
    text = CARD.format(
        title=data.pretty_name, threshold=r["threshold"], scorer=r["scorer"],
        pairs=meta["pairs"], candidates=r["candidates"], iteration=iteration, curator=r["curator"],
        auc=meta["curator_auc"], well_formed=meta["well_formed"], sources=", ".join(f"{k} ({v})" for k, v in meta["sources"].items()) or "none",
        licenses=", ".join(f"{k} ({v})" for k, v in meta["licenses"].items()) or "none", commit=meta["git_commit"],
        load_from=repo_id or str(out))
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n{text}")
    with atomic_write(out / "data" / PARQUET_NAME) as tmp:
        pq.write_table(table, tmp)
    with atomic_write(out / "README.md") as tmp:
        card.save(tmp)
    return card


def push_to_hub(out: str | Path, repo_id: str, private: bool = False, api=None) -> str:
    """Upload the exported folder as dataset repo ``repo_id``; the token comes from HF_TOKEN only."""
    token = os.environ.get("HF_TOKEN")
    if not token and api is None:
        raise ExportError("--push-to-hub needs a Hugging Face token in the environment variable HF_TOKEN "
                          "(tokens are never read from params or arguments)")
    from huggingface_hub import HfApi

    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="dataset",
                      commit_message="humpback export dataset")
    return f"https://huggingface.co/datasets/{repo_id}"
