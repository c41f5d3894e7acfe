import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _texts import TEXTS
from humpback.augment.config import AugmentConfig
from humpback.augment.generate import CANDIDATE_SCHEMA, augment
from humpback.augment.hygiene import clean_instruction
from humpback.core.incomplete import Incomplete
from humpback.core.shards import SEGMENT_SCHEMA, ShardWriter, shard_files
from humpback.data.dedup import content_id
from humpback.models.engine import EngineSpec
from humpback.models.hf import HFEngine
from humpback.prompts import read_template

CFG = AugmentConfig(generation={"max_new_tokens": 6, "batch_size": 4, "precision": "fp32"})
TEMPLATE = read_template("backward")


def _corpus(path, texts):
    with ShardWriter(path, SEGMENT_SCHEMA, shard_size=2) as w:
        for i, text in enumerate(texts):
            w.add({"id": content_id(text), "text": text, "source": "files", "url": f"doc{i}", "header": f"H{i}",
                   "n_chars": len(text)})


class CountingEngine(HFEngine):
    """The real engine, counting calls; ``fail_on`` makes one call crash (a killed stage)."""

    def __init__(self, *args, fail_on=None, blank=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.fail_on, self.blank = 0, fail_on, blank

    def generate(self, conversations, sampling, on_batch=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("killed")
        out = super().generate(conversations, sampling, on_batch)
        return ["  " if self.blank and i % 2 else o for i, o in enumerate(out)]


def _snapshot(d):
    return {p.name: p.read_bytes() for p in shard_files(d)}


@pytest.fixture()
def corpus(tmp_path):
    texts = [t + f" (variant {i})" for i, t in enumerate(TEXTS.values())]  # 5 segments -> 3 shards
    _corpus(tmp_path / "corpus", texts)
    return tmp_path / "corpus"


class CountingSpec(EngineSpec):
    """The real spec, except that it builds a CountingEngine and keeps every engine it built."""

    def __init__(self, model_dir, generation, box, **engine_kwargs):
        super().__init__(model_dir, generation)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "engine_kwargs", engine_kwargs)

    def generator(self):
        self.box.append(CountingEngine(self.model_dir, batch_size=4, precision="fp32", **self.engine_kwargs))
        return self.box[-1]


def _run(corpus, out, engine_box, tiny_model_dir, cfg=CFG, **engine_kwargs):
    spec = CountingSpec(tiny_model_dir, cfg.generation, engine_box, **engine_kwargs)
    return augment(corpus, out, spec, cfg, TEMPLATE, "model-digest", progress=False)


def test_one_instruction_per_segment_with_schema(corpus, tmp_path, tiny_model_dir):
    report = _run(corpus, tmp_path / "out", [], tiny_model_dir)
    table = pa.concat_tables(pq.read_table(p) for p in shard_files(tmp_path / "out"))
    assert table.schema.remove_metadata().equals(CANDIDATE_SCHEMA)
    assert table.num_rows == report.candidates == report.segments == 5
    corpus_ids = pa.concat_tables(pq.read_table(p) for p in shard_files(corpus))["id"].to_pylist()
    assert table["id"].to_pylist() == corpus_ids
    assert set(table["backward_model"].to_pylist()) == {"model-digest"}
    assert all(t.strip() for t in table["instruction"].to_pylist())


def test_rerun_reuses_everything_and_adding_a_shard_generates_only_it(corpus, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    _run(corpus, out, [], tiny_model_dir)
    first = _snapshot(out)
    box = []
    report = _run(corpus, out, box, tiny_model_dir)
    assert box == [] and report.shards_reused == 3 and _snapshot(out) == first  # engine never even loaded

    extra = TEXTS["tea"] + " A new document."
    with ShardWriter(tmp_path / "extra", SEGMENT_SCHEMA, 2) as w:
        w.add({"id": content_id(extra), "text": extra, "source": "files", "url": "new", "header": "New", "n_chars": len(extra)})
    new_shard = shard_files(tmp_path / "extra")[0]
    new_shard.rename(corpus / new_shard.name.replace("part-00000", "part-00003"))
    report = _run(corpus, out, box, tiny_model_dir)
    assert (report.shards_generated, report.shards_reused) == (1, 3) and box[-1].calls == 1
    assert {k: v for k, v in _snapshot(out).items() if k in first} == first


def test_an_engine_error_on_one_shard_is_incomplete_and_the_rerun_equals_a_from_scratch_run(
        corpus, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    # the engine fails while generating the second of three shards: the stage says so in one line
    with pytest.raises(Incomplete, match=r"^2 of 3 units not written: the engine failed on \S+ "
                                         r"\(RuntimeError: killed\); the 1 written are kept"):
        _run(corpus, out, [], tiny_model_dir, fail_on=2)
    assert len(shard_files(out)) == 1  # the finished shard survives, nothing half-written
    report = _run(corpus, out, [], tiny_model_dir)
    assert (report.shards_generated, report.shards_reused) == (2, 1)
    _run(corpus, tmp_path / "scratch", [], tiny_model_dir)
    assert _snapshot(out) == _snapshot(tmp_path / "scratch")  # no row lost or duplicated


@pytest.mark.parametrize("damage", ["truncate", "garbage", "fewer_rows"])
def test_a_broken_output_shard_is_recomputed_not_trusted(corpus, tmp_path, tiny_model_dir, caplog, damage):
    """A shard cut short (a full disk, an interrupted copy) or holding too few rows is not finished work."""
    import logging

    out = tmp_path / "out"
    _run(corpus, out, [], tiny_model_dir)
    good = _snapshot(out)
    victim = shard_files(out)[1]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif damage == "garbage":
        victim.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    else:
        t = pq.read_table(victim)
        pq.write_table(t.slice(0, 1).replace_schema_metadata(t.schema.metadata), victim)
    engines = []
    with caplog.at_level(logging.WARNING):
        report = _run(corpus, out, engines, tiny_model_dir)
    assert (report.shards_generated, report.shards_reused, report.shards_replaced_broken) == (1, 2, 1)
    assert engines[0].calls == 1 and _snapshot(out) == good
    assert any(victim.name in r.getMessage() and "broken" in r.getMessage() for r in caplog.records)


def test_stale_shards_and_changed_settings_are_replaced(corpus, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    _run(corpus, out, [], tiny_model_dir)
    (out / ".part-x.parquet.tmp-1").write_bytes(b"partial")  # left by a crash
    shard_files(corpus)[-1].unlink()  # a corpus shard disappears
    report = _run(corpus, out, [], tiny_model_dir)
    assert report.files_removed == 2 and len(shard_files(out)) == 2 and report.shards_generated == 0

    shorter = AugmentConfig(generation={"max_new_tokens": 4, "batch_size": 4, "precision": "fp32"})
    report = _run(corpus, out, [], tiny_model_dir, cfg=shorter)  # a new sampling setting changes every key
    assert report.shards_generated == 2 and report.files_removed == 2
    assert set(pq.read_table(shard_files(out)[0])["gen_max_new_tokens"].to_pylist()) == {4}


def test_empty_generations_are_left_out_and_counted(corpus, tmp_path, tiny_model_dir):
    report = _run(corpus, tmp_path / "out", [], tiny_model_dir, blank=True)
    assert report.candidates == 3 and report.segments == 5
    dropped = report.metrics()["dropped"]
    assert dropped["empty"] == 2 and sum(dropped.values()) == 2
    again = _run(corpus, tmp_path / "out", [], tiny_model_dir, blank=True)  # counts survive reuse
    assert again.shards_reused == 3 and again.metrics()["dropped"]["empty"] == 2


SEGMENT = ("Sourdough needs a lively starter, flour, water and salt. Mix them, let the dough rest for an hour, "
           "fold it every thirty minutes, shape it and bake it hot in a covered pot.")


@pytest.mark.parametrize("generation, reason", [
    ("How do I bake a sourdough loaf at home?", None),
    ("   ", "empty"),
    ("Write the instruction or question that a user most likely gave", "echoes_prompt"),
    ("here is a TEXT written by a person: bread", "echoes_prompt"),
    ("Mix them, let the dough rest for an hour, fold it every thirty minutes, shape it", "copies_segment"),
    ("What does 'let the dough rest for an hour' mean?", None),  # a short quote is a fair request
])
def test_generations_that_are_no_instruction_are_dropped_by_reason(generation, reason):
    from humpback.augment.config import HygieneConfig
    from humpback.augment.hygiene import hygiene_problem

    instruction, _, _ = clean_instruction(generation, 2000)
    assert hygiene_problem(instruction, SEGMENT, TEMPLATE, HygieneConfig()) == reason
    off = HygieneConfig(prompt_words=None, segment_words=None, describes_text=False)
    assert hygiene_problem(instruction, SEGMENT, TEMPLATE, off) == ("empty" if reason == "empty" else None)


def test_dropped_generations_are_counted_in_the_stage(corpus, tmp_path, tiny_model_dir):
    """A backward model that echoes its prompt loses those rows, counted, and reruns reuse the shards."""

    class Echo(CountingEngine):
        def generate(self, conversations, sampling, on_batch=None):
            out = super().generate(conversations, sampling, on_batch)
            if self.calls > 1:  # the first shard only
                return out
            segment = conversations[1][-1]["content"].split("Text:\n", 1)[1]
            return ["Write the instruction or question that a user most likely gave an AI",
                    " ".join(segment.split()[:20])] + out[2:]

    class EchoSpec(CountingSpec):
        def generator(self):
            self.box.append(Echo(self.model_dir, batch_size=4, precision="fp32"))
            return self.box[-1]

    spec = EchoSpec(tiny_model_dir, CFG.generation, [])
    report = augment(corpus, tmp_path / "out", spec, CFG, TEMPLATE, "model-digest", progress=False)
    assert {k: v for k, v in report.metrics()["dropped"].items() if v} == {"echoes_prompt": 1, "copies_segment": 1}
    assert report.candidates == report.segments - 2


def test_clean_instruction():
    assert clean_instruction('  "Explain tides."\n', 100) == ("Explain tides.", False, ["quotes"])
    assert clean_instruction("x" * 10, 4) == ("xxxx", True, [])
    assert clean_instruction("   ", 10) == ("", False, [])
