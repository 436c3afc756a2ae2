"""Bits per byte wherever runs with different tokenizers meet: each run keeps its validation text's tokens and bytes
(counted once, by hand here), the Runs table, the overlay's rule, the race's table and verdicts, the CLI's JSON;
and the other places a BPE run meets the rest: two runs' views on one prompt, labels for part of a character, and
text streamed a token at a time."""

from __future__ import annotations

import json
import math

import pytest

from babygpt.interpret.looking import comparison_refusal
from babygpt.lessons.baselines import ValidationText
from babygpt.lessons.comparing import BITS_PER_BYTE_AXIS, NATS_AXIS, loss_scale, same_tokenizer
from babygpt.lessons.race import (
    BITS_PER_BYTE,
    EVAL_RESOLUTION,
    NATS,
    RaceEntry,
    ladder_steps,
    race_bands,
    race_results,
    race_table,
    spread_note,
)
from babygpt.model.gpt import build_model
from babygpt.orchestration.race import race_plans
from babygpt.orchestration.runs import create_run
from babygpt.store.archive import export_bytes, import_zip
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.bpe import train_bpe
from babygpt.text.bpe_tokenizer import BPETokenizer
from babygpt.text.corpus import Corpus, describe_token
from babygpt.text.text_stream import TextStream, streamed_text
from babygpt.text.tokenizers import CharTokenizer, GPT2Tokenizer
from tests.helpers import LIMITS, tiny_plan
from tests.import_support import recorded_run

TEXT = "\n".join(f"le café {i % 7} · 東京 {i % 3} · the cat sat on the mat" for i in range(200)) + "\n"


# --- the validation text, counted once --------------------------------------------------------------------------

def test_a_run_keeps_its_validation_texts_tokens_and_bytes_counted_by_hand():
    plan = tiny_plan(TEXT)  # char: one token a character, so the bytes are the characters' UTF-8 lengths
    val = plan.split.val.tolist()
    by_hand = sum(len(plan.tokenizer.chars[i].encode("utf-8")) for i in val)
    assert by_hand == len(plan.tokenizer.decode(val).encode("utf-8")) > len(val), "é and 東京 are several bytes"
    info = create_run(RunStore(), plan, name="cafe")
    assert info.config["data"]["validation"] == {"tokens": len(val), "bytes": by_hand}
    validation = ValidationText.from_config(info.config)
    # 10 tokens at 2 nats each over 25 bytes: 20 / (ln 2 × 25) = 1.15415603… bits per byte
    assert ValidationText(10, 25).bits_per_byte(2.0) == pytest.approx(1.1541560327111706, abs=1e-12)
    assert validation.bits_per_byte(1.7) == pytest.approx(1.7 * len(val) / (math.log(2) * by_hand))


def test_a_bpe_runs_bytes_are_counted_token_by_token():
    bpe = BPETokenizer(train_bpe(TEXT, 300, "gpt4"))
    plan = tiny_plan(TEXT, tokenizer=bpe)
    val = plan.split.val.tolist()
    info = create_run(RunStore(), plan, name="bpe")
    assert info.config["data"]["validation"] == {"tokens": len(val), "bytes": sum(len(bpe.bpe.vocab[i]) for i in val)}


def test_runs_recorded_before_runs_kept_it_or_damaged_have_no_bits_per_byte():
    assert ValidationText.from_config({"data": {}}) is None
    assert ValidationText.from_config({"data": {"validation": {"tokens": 0, "bytes": 5}}}) is None
    assert ValidationText.from_config({"data": {"validation": {"tokens": True, "bytes": 5}}}) is None
    assert ValidationText.from_config({"data": {"validation": "x"}}) is None


def test_the_runs_table_and_an_archive_carry_bits_per_byte(tmp_path):
    store, run_id = recorded_run(TEXT)  # weights, and a validation loss of 1.5 at step 50
    info = store.get(run_id)
    store.log_metrics(info.id, [MetricRow(60, "val", 2.0, None, None, 1.0)])
    validation = ValidationText.from_config(info.config)
    (row,) = store.summaries()
    assert row.best_val_bpb == pytest.approx(1.5 * validation.tokens / (math.log(2) * validation.bytes))
    (tmp_path / "run.zip").write_bytes(export_bytes(store, info.id))
    back = RunStore(tmp_path / "back")
    imported = import_zip(back, tmp_path / "run.zip", limits=LIMITS)
    assert ValidationText.from_config(imported.config) == validation


def test_the_cli_reports_val_bpb_for_train_and_eval_by_the_runs_own_count(tmp_path, capsys):
    from babygpt.cli import main

    data = tmp_path / "cafe.txt"
    data.write_text(TEXT, encoding="utf-8")
    tiny = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--max-iters", "4", "--eval-interval", "4", "--eval-iters", "2", "--device", "cpu", "--dtype", "float32"]
    assert main(["train", "--data", str(data), "--tokenizer", "bpe", "--vocab-size", "300", *tiny]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    validation = ValidationText.from_config(RunStore().get(trained["run"]).config)
    assert trained["val_bpb"] == pytest.approx(validation.bits_per_byte(trained["val_loss"]))
    assert main(["eval", "--run", trained["run"], "--data", str(data), "--eval-iters", "2"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["val_bpb"] == pytest.approx(validation.bits_per_byte(evaluated["val_loss"]))


# --- runs on one chart ------------------------------------------------------------------------------------------

def _config(tokenizer, tokens=100, byte_count=250) -> dict:
    return {"tokenizer": tokenizer.to_dict(), "data": {"validation": {"tokens": tokens, "bytes": byte_count}}}


def test_runs_that_cut_text_differently_are_compared_in_bits_per_byte_and_alike_in_nats():
    a, b = BPETokenizer(train_bpe(TEXT, 300, "gpt4")), BPETokenizer(train_bpe(TEXT, 280, "gpt4"))
    char = CharTokenizer.from_text(TEXT)
    assert same_tokenizer([_config(a), _config(BPETokenizer(train_bpe(TEXT, 300, "gpt4")))])
    assert not same_tokenizer([_config(a), _config(b)]), "two BPEs with other merges are other tokenizers"
    alike = loss_scale([_config(a), _config(a)])
    assert not alike.bits_per_byte and alike.axis == NATS_AXIS and alike.curve(_config(a), [(1, 2.0)]) == [(1, 2.0)]
    asked = loss_scale([_config(a), _config(a)], asked=True)
    assert asked.bits_per_byte and not asked.forced
    mixed = loss_scale([_config(a), _config(char, 100, 100)])
    assert mixed.forced and mixed.axis == BITS_PER_BYTE_AXIS
    # 2 nats a token over 100 tokens of 250 bytes: 200 / (ln 2 × 250) = 1.1541560… bits per byte
    assert mixed.curve(_config(a), [(5, 2.0)]) == [(5, pytest.approx(1.1541560327111706))]
    assert mixed.curve({"tokenizer": char.to_dict(), "data": {}}, [(5, 2.0)]) is None, "an old run is left out"


def _entries(tokens: int, byte_count: int | None, losses: dict[str, list[float]]) -> list[RaceEntry]:
    data = {"validation": {"tokens": tokens, "bytes": byte_count}} if byte_count else {}
    entries = []
    for preset, values in losses.items():
        config = {"model": {"preset": preset, "vocab_size": 50, "block_size": 16, "n_layer": 1, "n_head": 2,
                            "n_embd": 16}, "train": {"lr": 0.01}, "data": data}
        entries += [RaceEntry(preset, config, True, {10: v + 0.5, 20: v}) for v in values]
    return entries


def test_the_race_reads_its_table_and_verdicts_in_bits_per_byte():
    # 100 tokens of 400 bytes: one nat per token is 100 / (ln 2 × 400) = 0.36067… bits per byte
    per_nat = 100 / (math.log(2) * 400)
    entries = _entries(100, 400, {"bigram": [2.5, 2.52], "single-head": [2.3, 2.31]})
    results = race_results(entries)
    assert [r.unit for r in results] == [BITS_PER_BYTE] * 2
    assert results[0].losses == pytest.approx((2.5 * per_nat, 2.52 * per_nat))
    assert results[0].resolution == pytest.approx(EVAL_RESOLUTION * per_nat)
    (step,) = ladder_steps(results)
    assert step.gain == pytest.approx((2.51 - 2.305) * per_nat) and step.verdict == "better, by more than the seed spread"
    rows = race_table(results)
    assert rows[0]["best val bits per byte, mean"] == f"{2.51 * per_nat:.3f}"
    assert "bits per byte of its validation text" in spread_note(results)
    assert race_bands(entries)["bigram"].mean == pytest.approx([3.01 * per_nat, 2.51 * per_nat])
    assert race_bands(entries, NATS)["bigram"].mean == pytest.approx([3.01, 2.51])


def test_a_one_seed_verdict_uses_the_evaluations_resolution_in_bits_per_byte():
    per_nat = 100 / (math.log(2) * 400)  # 0.0072 bits per byte resolve what 0.02 nats per token do
    results = race_results(_entries(100, 400, {"bigram": [2.50], "single-head": [2.49]}))
    assert race_table(results)[1]["against the rung below"] == (
        f"within what the evaluation resolves ({EVAL_RESOLUTION * per_nat:.3f}): no measured difference")


def test_a_race_recorded_before_runs_kept_their_validation_text_reads_in_nats_and_says_so():
    entries = _entries(100, None, {"bigram": [2.5, 2.52], "single-head": [2.3, 2.31]})
    results = race_results(entries)
    assert results[0].unit == NATS and results[0].losses == (2.5, 2.52)
    assert "best val loss, mean" in race_table(results)[0]
    assert "In nats per token: these runs were recorded before" in spread_note(results)
    assert race_bands(entries, BITS_PER_BYTE) == {}


def test_a_race_learns_its_bpe_once_and_every_rung_reads_the_same_tokens():
    bpe = BPETokenizer(train_bpe(TEXT, 300, "gpt4"))
    plans = race_plans(Corpus.from_text("cafe", TEXT), bpe, 10, dict(n_layer=1, n_head=2, n_embd=16, block_size=16),
                       seeds=(1, 2), presets=("bigram", "gpt"))
    assert {id(plan.tokenizer) for plan, _ in plans} == {id(bpe)}
    assert {plan.validation for plan, _ in plans} == {ValidationText.measure(bpe, plans[0][0].split.val)}
    learned = race_plans(Corpus.from_text("cafe", TEXT), "bpe", 10, dict(n_layer=1, n_head=2, n_embd=16,
                                                                          block_size=16), seeds=(1,))
    assert len({id(plan.tokenizer) for plan, _ in learned}) == 1, "a kind is learned once for every rung"


# --- two runs on one prompt ---------------------------------------------------------------------------------------

def _model(vocab_size: int):
    return build_model(tiny_plan(TEXT).model_config.__class__(vocab_size=vocab_size, block_size=16, n_layer=1,
                                                              n_head=2, n_embd=16).validate())


def test_two_bpe_runs_with_other_merges_are_not_compared_on_one_prompt():
    a, b = BPETokenizer(train_bpe(TEXT, 300, "gpt4")), BPETokenizer(train_bpe(TEXT, 270, "gpt4"))
    prompt = "the cat sat on the mat"
    assert a.encode(prompt) != b.encode(prompt)
    refusal = comparison_refusal(_model(a.vocab_size), _model(b.vocab_size), a, b, prompt)
    assert refusal.startswith("The runs' tokenizers cut this prompt into different tokens")
    assert comparison_refusal(_model(a.vocab_size), _model(a.vocab_size), a, a, prompt) is None
    # character vocabularies of two texts still cut a prompt they both read into the same characters
    c, d = CharTokenizer.from_text(TEXT), CharTokenizer.from_text(TEXT + "XYZ")
    assert comparison_refusal(_model(c.vocab_size), _model(d.vocab_size), c, d, "the cat") is None


# --- part of a character ------------------------------------------------------------------------------------------

def test_a_token_holding_part_of_a_character_is_labelled_by_its_bytes():
    bpe = BPETokenizer(train_bpe("the cat sat", 256, None))  # the bytes alone
    ids = bpe.encode("東")
    assert ids == [0xE6, 0x9D, 0xB1]
    assert [bpe.token_text(i) for i in ids] == ["\\xe6", "\\x9d", "\\xb1"], "three tokens, three labels"
    assert [describe_token(bpe.token_text(i)) for i in ids] == ["\\xe6", "\\x9d", "\\xb1"]
    assert describe_token(" the\n") == " the\\n" and describe_token(" ") == "␣"
    gpt2 = GPT2Tokenizer.from_text("🎉")
    assert "\\x" in "".join(gpt2.token_text(i) for i in gpt2.encode("🎉")), "GPT-2 cuts the emoji's bytes too"


def test_streamed_text_holds_a_character_back_until_it_is_whole():
    bpe = BPETokenizer(train_bpe("the cat sat", 256, None))
    stream = TextStream(bpe)
    assert [stream.push(i) for i in bpe.encode("a東b")] == ["a", "", "", "東", "b"]
    assert not stream.pending
    assert stream.push(0xE4) == "" and stream.pending, "half a character at the end is held back, never garbage"
    assert streamed_text(bpe, bpe.encode("東京") + [0xE4, 0xBA]) == "東京"
    assert streamed_text(bpe, [0xFF, 0x61]) == "\ufffda", "a byte that is no character's shows as U+FFFD"
    char = CharTokenizer.from_text("ab東")
    assert streamed_text(char, char.encode("東ab")) == "東ab"
