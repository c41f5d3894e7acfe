import gzip
import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from humpback.data.config import SeedConfig
from humpback.data.seed import (
    SeedDataError,
    _flatten_trees,
    load_seed,
    oasst_first_turn_pairs,
    select_pairs,
    split_heldout,
)

FIXTURE = FIXTURES / "oasst_trees.jsonl"
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo" / "seed.jsonl"


def _messages():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_oasst_rule_first_turn_english_rank0():
    pairs = oasst_first_turn_pairs(_messages())
    got = {(p["instruction"], p["response"]) for p in pairs}
    assert got == {
        ("How do I boil an egg?", "Put the egg in boiling water for eight minutes, then cool it in cold water."),
        ("Suggest a name for a grey cat.", "How about Ash, Smokey or Pebble?"),
    }  # not: German (t2), no rank-0 reply (t3), deleted rank-0 reply (t4), the second turn of t1


def test_flat_and_tree_formats_agree():
    flat = list(_flatten_trees(_messages()))
    assert {m["message_id"] for m in flat} >= {"p1", "a1", "p1b", "a1b"}
    assert oasst_first_turn_pairs(flat) == oasst_first_turn_pairs(_messages())


def test_selection_is_seeded_and_independent_of_input_order():
    pairs = [{"instruction": f"q{i}", "response": "r", "message_id": f"m{i}"} for i in range(50)]
    a = select_pairs(pairs, 10, seed=0)
    assert a == select_pairs(list(reversed(pairs)), 10, seed=0)
    assert a != select_pairs(pairs, 10, seed=1)
    assert len(a) == 10


def test_load_seed_oasst_from_local_gz(tmp_path):
    gz = tmp_path / "trees.jsonl.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    pairs = load_seed(SeedConfig(source="oasst", path=str(gz), max_pairs=1))
    assert len(pairs) == 1 and pairs[0]["source"] == "oasst" and len(pairs[0]["id"]) == 16


def test_demo_seed_is_large_and_clean():
    pairs = load_seed(SeedConfig(path=str(DEMO)))
    assert len(pairs) >= 150
    assert len({p["instruction"] for p in pairs}) == len(pairs)
    train, held = split_heldout(pairs, 16, seed=0)
    assert len(held) == 16 and len(train) == len(pairs) - 16
    assert not {p["id"] for p in train} & {p["id"] for p in held}


def test_custom_columns_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"prompt": ["a?", "b?"], "answer": ["A.", "B."]}), path)
    pairs = load_seed(SeedConfig(path=str(path), instruction_column="prompt", response_column="answer"))
    assert [(p["instruction"], p["response"]) for p in pairs] == [("a?", "A."), ("b?", "B.")]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"instruction": "hi"}\n', r"pairs.jsonl:1: missing or non-text column\(s\) \['response'\]"),
        ('{"instruction": "hi", "response": "yo"}\n{broken\n', r"pairs.jsonl:2: not valid JSON"),
        ('{"instruction": " ", "response": "yo"}\n', r"pairs.jsonl:1: empty instruction"),
        ("\n", r"no seed pairs found"),
    ],
)
def test_bad_seed_files_name_file_and_row(tmp_path, content, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(content)
    with pytest.raises(SeedDataError, match=message):
        load_seed(SeedConfig(path=str(path)))


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize("name, make, message", [
    ("pairs.parquet", lambda good: b"PAR1 not really parquet", "pairs.parquet: the seed file cannot be read"),
    ("pairs.jsonl.gz", lambda good: _truncated(gzip.compress(good)), "pairs.jsonl.gz: the seed file cannot be read"),
    # the line is named (the reader used to report the whole file as unreadable)
    ("pairs.jsonl", lambda good: good.replace(b"hi", b"h\xe9"), "pairs.jsonl:1: not UTF-8 text .*save the seed file as UTF-8"),
])
def test_broken_seed_files_are_named_not_a_traceback(tmp_path, name, make, message):
    good = b"".join(json.dumps({"instruction": f"hi {i}", "response": "yo " * 50}).encode() + b"\n"
                    for i in range(400))
    path = tmp_path / name
    path.write_bytes(make(good))
    with pytest.raises(SeedDataError, match=message):
        load_seed(SeedConfig(path=str(path)))


def test_zstd_seed_files_are_read(tmp_path):
    import pyarrow as pa

    path = tmp_path / "pairs.jsonl.zst"
    with pa.CompressedOutputStream(str(path), "zstd") as out:
        out.write(b'{"instruction": "Name a colour.", "response": "Red."}\n')
    assert [(p["instruction"], p["response"]) for p in load_seed(SeedConfig(path=str(path)))] == [
        ("Name a colour.", "Red.")]


def test_heldout_must_leave_training_data():
    with pytest.raises(SeedDataError, match="seed.heldout"):
        split_heldout([{"id": "x"}] * 3, 3, seed=0)


def test_seed_token_counts_equal_the_tokenizers_without_importing_transformers(tiny_model_dir):
    """The seed stage counts tokens from tokenizer.json alone (transformers' import is ~4 s of the
    stage): the counts must be the ones AutoTokenizer gives, special tokens and all."""
    import json
    import subprocess
    import sys

    from transformers import AutoTokenizer

    texts = ["Hello world", "<|im_start|>user\nHi<|im_end|>", "  tabs\tand\nnewlines, ünïcode 数字 🐋", ""]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    code = ("import json, sys; sys.path.insert(0, 'pipeline'); from seed import token_counter; "
            f"print(json.dumps([token_counter({str(tiny_model_dir)!r})({texts!r}), 'transformers' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    counts, imported = json.loads(out.stdout)
    assert counts == expected and min(expected[:3]) > 1
    assert imported is False
