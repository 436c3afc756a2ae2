"""Every page that looks at runs, with a run on a BPE learned from its text (trained here, tiny): Attention's axes
label part of a character by its bytes, Inside measures it and compares it with a BPE of other merges only where it
may, Generate streams half a character as nothing until it is whole, Runs overlays it with a char run in bits per
byte, and the race reads in bits per byte and trains on the Data page's BPE (AppTest)."""

from __future__ import annotations

import math

import pytest
import torch
from streamlit.testing.v1 import AppTest

from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE, ValidationText
from babygpt.lessons.comparing import FORCED_SENTENCE
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.race import race_plans
from babygpt.orchestration.runs import create_run, start_run
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.bpe import train_bpe, utf8
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import corpus_from_path
from babygpt.training import sample
from tests.conftest import ROOT
from tests.helpers import chart_spec, tiny_config

TEXT = "\n".join(f"the cat sat on the mat {i % 7}. 東京 is far, le café {i % 5} est là!" for i in range(300)) + "\n"
SIZES = dict(n_layer=2, n_head=2, n_embd=16, block_size=16)


def train(path, tokenizer, name: str):
    settings = tiny_config(max_iters=10, eval_interval=5, eval_iters=2, batch_size=4, dtype="float32")
    plan = plan_training(corpus_from_path(path), tokenizer, "gpt", settings, **SIZES)
    trainer, info = start_run(RunStore(), plan, name=name)
    trainer.run()
    return info


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "cats.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def bpe_run(text_file, fresh_resources):
    """A run on a 300-token BPE, on a text kept on disk: 東 alone is three tokens at that size."""
    bpe = BPETokenizer(train_bpe(TEXT, 300, "gpt4"))
    assert len(bpe.encode("東")) > 1, "the fixture needs a token holding part of a character"
    return {"bpe": train(text_file, bpe, "bpe run"), "tokenizer": bpe}


@pytest.fixture
def bpe_runs(bpe_run, text_file):
    """The BPE run, one on a BPE with other merges, and a char run, all on one text."""
    return {**bpe_run, "other": train(text_file, BPETokenizer(train_bpe(TEXT, 280, None)), "other"),
            "char": train(text_file, "char", "char run")}


def page(run_id: str | None, name: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    if run_id:
        at.session_state["active_run"] = run_id
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(name).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_attention_labels_part_of_a_character_by_its_bytes(bpe_run):
    at = page(bpe_run["bpe"].id, "views/attention.py", page_flags={"attention_prompt": "東京 is far"})
    labels = chart_spec(at, "attention_heatmap")["data"][0]["x"]
    pieces = [bpe_run["tokenizer"].token_bytes(i) for i in bpe_run["tokenizer"].encode("東京 is far")]
    assert len(labels) == len(pieces)
    assert labels[0] == "0:" + "".join(f"\\x{b:02x}" for b in pieces[0]), "the first token is part of 東: its bytes"
    assert "\ufffd" not in "".join(labels), "never the replacement character, which makes bytes look alike"
    assert len(set(labels)) == len(labels)


def test_inside_measures_a_bpe_run_and_compares_it_only_where_the_prompt_is_the_same_tokens(bpe_runs, text_file):
    at = page(bpe_runs["bpe"].id, "views/inside.py", corpus=corpus_from_path(text_file))
    assert at.text_area(key="inside_lens_prompt").value == "the cat sat on the mat", "the start of the run's text"
    assert {"inside_head_grid", "inside_lens"} <= {c.key for c in at.get("plotly_chart")}
    at.selectbox(key="inside_compare").set_value(bpe_runs["other"].id).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = [i.value for i in at.info]
    assert any("cut this prompt into different tokens" in s for s in said), said
    spec = chart_spec(at, "inside_compare_curves")
    assert spec["layout"]["yaxis"]["title"]["text"] == "val bits per byte"
    assert any(c.value == f"{FORCED_SENTENCE} {BITS_PER_BYTE_SENTENCE}" for c in at.caption)


def test_generate_streams_half_a_character_as_nothing_until_it_is_whole(bpe_run, monkeypatch):
    """The model is made to write 東京 byte by byte and then the first two bytes of 中: the text shows 東京, and says
    that the last token ends partway through a character, where joining each token's own text showed garbage."""
    script = list(utf8("東京")) + list(utf8("中"))[:2]
    written = iter(script)

    def scripted(logits, cfg):  # the distribution sampled from: all on the script's next token
        probs = torch.zeros(logits.shape[-1])
        probs[next(written)] = 1.0
        return probs

    monkeypatch.setattr(sample, "filter_probs", scripted)
    at = page(bpe_run["bpe"].id, "views/generate.py")
    at.text_area(key="generate_prompt").input("the cat ").run()
    at.number_input(key="gen_max_new").set_value(len(script)).run()
    at.button(key="generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.code[0].value == "the cat 東京"
    assert any("The last token ends partway through a character, so its bytes are not shown" in c.value
               for c in at.caption)
    assert any("the model chose **“\\\\xe6”**" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_runs_overlays_a_bpe_and_a_char_run_in_bits_per_byte(bpe_runs):
    at = page(None, "views/runs.py")
    at.toggle(key="runs_everyone").set_value(True).run()
    ids = [bpe_runs["bpe"].id, bpe_runs["char"].id]
    labels = {r.id: r.row() for r in RunStore().summaries()}
    spec = chart_spec(at, "runs_overlay")  # the five newest: both BPEs and the char run
    assert spec["layout"]["yaxis"]["title"]["text"] == "val bits per byte"
    assert at.toggle(key="runs_bpb_forced").value and at.toggle(key="runs_bpb_forced").proto.disabled
    assert any(c.value.startswith(FORCED_SENTENCE) for c in at.caption)
    table = at.dataframe[0].value.set_index("id")
    for run_id in ids:
        store = RunStore()
        best = min(m.loss for m in store.metrics(run_id) if m.split == "val")
        validation = ValidationText.from_config(store.get(run_id).config)
        by_hand = best * validation.tokens / (math.log(2) * validation.bytes)
        assert float(table.loc[run_id, "best_val_bpb"]) == pytest.approx(by_hand, abs=5e-4)  # shown to 3 places
        drawn = next(t for t in spec["data"] if t["name"] == labels[run_id]["label"])
        assert min(drawn["y"]) == pytest.approx(by_hand)


def test_runs_of_one_tokenizer_stay_in_nats_until_asked(bpe_run, text_file):
    train(text_file, bpe_run["tokenizer"], "two")
    at = page(None, "views/runs.py")
    at.toggle(key="runs_everyone").set_value(True).run()
    assert chart_spec(at, "runs_overlay")["layout"]["yaxis"]["title"]["text"] == "val loss (nats per token)"
    assert not [c for c in at.caption if c.value.startswith("Bits per byte:")]
    at.toggle(key="runs_bpb").set_value(True).run()
    assert chart_spec(at, "runs_overlay")["layout"]["yaxis"]["title"]["text"] == "val bits per byte"
    assert any(c.value == BITS_PER_BYTE_SENTENCE for c in at.caption)


def test_the_race_reads_in_bits_per_byte_on_a_bpe(text_file, fresh_resources):
    store = RunStore()
    sizes = dict(n_layer=1, n_head=2, n_embd=16, block_size=16)
    plans = race_plans(corpus_from_path(text_file), BPETokenizer(train_bpe(TEXT, 300, "gpt4")), 20, sizes,
                       seeds=(1, 2), presets=("bigram", "single-head"))
    group = "racebpe1"
    for k, (plan, name) in enumerate(plans):
        info = create_run(store, plan, name, status=RunStatus.DONE, group_id=group)
        store.log_metrics(info.id, [MetricRow(10, "val", 3.0 - k * 0.1, None, None, 1.0),
                                    MetricRow(20, "val", 2.5 - k * 0.1, None, None, 2.0)])
    at = page(None, "views/lessons.py", race_group=group)
    (table,) = [d.value for d in at.dataframe if "rung" in d.value.columns]
    assert "best val bits per byte, mean" in table.columns
    validation = ValidationText.from_config(store.list_runs(group)[0].config)
    assert table["best val bits per byte, mean"].iloc[0] == f"{validation.bits_per_byte((2.5 + 2.4) / 2):.3f}"
    assert chart_spec(at, "race_chart")["layout"]["yaxis"]["title"]["text"] == "val loss (bits per byte)"
    assert any(c.value == BITS_PER_BYTE_SENTENCE for c in at.caption)


def test_the_race_trains_on_the_data_pages_bpe(fresh_resources):
    at = page(None, "views/lessons.py", tokenizer_kind="bpe", bpe_choice={"vocab_size": 300, "split": "gpt4"},
              race_choice={"steps": 50, "seeds": 1, "layers": 1, "broken": None})
    at.button(key="race_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    group = at.session_state["race_group"]
    runs = RunStore().list_runs(group)
    assert len(runs) == 6 and {r.config["tokenizer"]["kind"] for r in runs} == {"bpe"}
    merges = {str(r.config["tokenizer"]["merges"]) for r in runs}
    assert len(merges) == 1, "every rung reads the same tokens"
    assert {r.config["tokenizer"]["asked"] for r in runs} == {300}, "the size chosen on the Data page"
    assert all(ValidationText.from_config(r.config) for r in runs)


def test_the_surprise_lesson_compares_a_bpe_run_only_with_runs_of_the_same_bpe(bpe_runs, text_file):
    train(text_file, bpe_runs["tokenizer"], "twin")
    at = page(bpe_runs["bpe"].id, "views/lessons.py", corpus=corpus_from_path(text_file))
    options = at.selectbox(key="surprise_second").options
    assert len(options) == 2 and options[1].startswith("twin · "), "the same BPE only: not other merges, not char"


def test_a_run_recorded_before_runs_kept_their_text_size_is_named_not_drawn(bpe_run, text_file):
    old = train(text_file, "char", "old *char* run")
    store = RunStore()
    document = dict(store.get(old.id).config)
    document["data"] = {k: v for k, v in document["data"].items() if k != "validation"}
    store.update_config(old.id, document)
    at = page(None, "views/runs.py")
    at.toggle(key="runs_everyone").set_value(True).run()
    names = [t["name"] for t in chart_spec(at, "runs_overlay")["data"]]
    assert names == [r.label for r in store.summaries() if r.id == bpe_run["bpe"].id]
    said = [c.value for c in at.caption if c.value.startswith("Not drawn in bits per byte")]
    assert said and "old \\*char\\* run" in said[0], said
