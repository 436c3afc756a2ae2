"""Which tokenizer for your text? The tokenizer race: every entry planned at the same bytes of text seen, read by the
ladder race's verdicts against the best, run as scheduler jobs end to end, and from the command line."""

from __future__ import annotations

import json
import math
import time

import pytest

from babygpt.cli import main
from babygpt.errors import BabyGPTError
from babygpt.lessons.race import (
    EVAL_RESOLUTION,
    RaceEntry,
    RungResult,
    group_races,
    race_bands,
    race_keys,
    race_results,
)
from babygpt.lessons.tokenizer_race import (
    MIN_STEPS,
    Budget,
    EntryFacts,
    against_best,
    bands_by_text_seen,
    race_key,
    tokenizer_name,
    tokenizer_table,
    tokenizer_verdict,
)
from babygpt.orchestration.race import RUNG_SETTINGS, race_entries, race_running
from babygpt.orchestration.tokenizer_race import (
    TokenizerRaceSettings,
    entry_facts,
    latest_tokenizer_race,
    race_report,
    tokenizer_race_plans,
)
from babygpt.server.scheduler import Scheduler
from babygpt.server.settings import SchedulerSettings
from babygpt.server.users import Actor
from babygpt.store.runs import RunStore
from babygpt.text.corpus import Corpus
from babygpt.text.tokenizers import text_bytes

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16)  # 12 × 16 = 192 tokens a step


def tiny_race(text_bytes: int = 12_000, sizes: tuple[int, ...] = (260, 300), seeds=(1, 2)) -> TokenizerRaceSettings:
    return TokenizerRaceSettings(sizes, "gpt2", text_bytes, seeds, sizes=TINY)


# --- planning: equal compute, and the settings each entry gets ----------------------------------------------------

def test_every_entry_sees_the_same_bytes_of_training_text_with_the_same_model(small_text):
    corpus = Corpus.from_text("tiny", small_text)
    plans = tokenizer_race_plans(corpus, tiny_race())
    names = [name for _, name in plans]
    assert names == [f"tokenizer race: {t} · seed {s}" for t in ("char", "gpt2", "bpe 260", "bpe 300") for s in (1, 2)]
    gpt = RUNG_SETTINGS["gpt"]
    for plan, name in plans:
        model, train = plan.model_config, plan.train_config
        assert (model.preset, model.n_layer, model.n_embd, model.block_size) == ("gpt", 1, 16, 16)
        assert (train.lr, train.batch_size, train.seed) == (gpt.lr, 12, int(name[-1]))
        assert model.vocab_size == plan.tokenizer.vocab_size
        # the budget: steps × tokens per step × this tokenizer's bytes per token on its training split
        per_token = text_bytes(plan.tokenizer, plan.split.train) / len(plan.split.train)
        seen = train.max_iters * 12 * 16 * per_token
        assert abs(seen - 12_000) <= 12 * 16 * per_token / 2, (name, seen)  # within half a step of the budget
        assert train.eval_interval == max(1, train.max_iters // 5)
    steps = {name.split(" · ")[0]: plan.train_config.max_iters for plan, name in plans}
    assert steps["tokenizer race: char"] > steps["tokenizer race: bpe 260"] > steps["tokenizer race: bpe 300"], \
        "longer tokens: fewer steps for the same text"
    kinds = {plan.tokenizer.to_dict()["kind"] for plan, _ in plans}
    assert kinds == {"char", "gpt2", "bpe"}
    asked = sorted({plan.tokenizer.to_dict().get("asked") for plan, _ in plans if plan.tokenizer.kind == "bpe"})
    assert asked == [260, 300] and all(p.tokenizer.bpe.split == "gpt2" for p, _ in plans if p.tokenizer.kind == "bpe")


def test_the_tokenizers_come_from_the_source_given_so_a_cached_bpe_is_not_learned_again(small_text):
    corpus = Corpus.from_text("tiny", small_text)
    asked = []

    def source(kind, bpe):
        asked.append((kind, bpe.vocab_size if bpe else None))
        from babygpt.text.tokenizers import build_tokenizer
        return build_tokenizer(kind, corpus.text, bpe)

    tokenizer_race_plans(corpus, tiny_race(seeds=(1,)), source)
    assert asked == [("char", None), ("gpt2", None), ("bpe", 260), ("bpe", 300)]


@pytest.mark.parametrize(("settings", "message"), [
    (tiny_race(sizes=()), "Choose from 1 to 3 BPE vocabulary sizes to race beside char and GPT-2 (got 0)."),
    (tiny_race(sizes=(260, 300, 400, 500)), "Choose from 1 to 3 BPE vocabulary sizes"),
    (tiny_race(sizes=(300, 300)), "Each BPE vocabulary size may be raced once"),
    (tiny_race(sizes=(255,)), "A BPE vocabulary holds from 256 tokens"),
    (tiny_race(seeds=()), "Race from 1 to 5 different seeds (got 0)."),
    (tiny_race(text_bytes=0), "The text each entry sees must be from 1 byte to 20,000,000 bytes (got 0)."),
])
def test_bad_race_settings_are_refused_in_a_sentence_before_anything_is_learned(settings, message):
    with pytest.raises(BabyGPTError) as refused:
        tokenizer_race_plans(Corpus.from_text("tiny", "never tokenized"), settings,
                             lambda kind, bpe: pytest.fail("nothing is built for refused settings"))
    assert message in str(refused.value)


def test_a_vocabulary_above_this_servers_bound_is_refused(small_text):
    with pytest.raises(BabyGPTError, match="from 256 tokens .* to 512"):
        tokenizer_race_plans(Corpus.from_text("tiny", small_text), tiny_race(sizes=(1024,)), max_vocab=512)


def test_a_budget_too_small_for_an_entry_names_it_and_the_bytes_needed(small_text):
    with pytest.raises(BabyGPTError) as refused:
        tokenizer_race_plans(Corpus.from_text("tiny", small_text), tiny_race(text_bytes=3_000))
    words = str(refused.value)  # named: the entry of the longest tokens, which needs the most text
    assert words.startswith("With 3,000 bytes of text per entry, ") and "char" not in words, words
    enough = int(words.split("give every entry at least ")[1].split(" bytes")[0].replace(",", ""))
    assert len(tokenizer_race_plans(Corpus.from_text("tiny", small_text), tiny_race(text_bytes=enough))) == 8
    assert Budget(1000, 10).steps("char", 1.0) == 100
    with pytest.raises(BabyGPTError, match=r"bpe 512 \(4.00 bytes a token\) would train only 3 steps; give every "
                                           rf"entry at least {MIN_STEPS * 100 * 4:,} bytes"):
        Budget(1200, 100).steps("bpe 512", 4.0)


def test_two_sizes_the_text_fills_to_the_same_vocabulary_are_refused_naming_where_it_stopped():
    text = "abcabc xyz " * 50  # the text fills 258 tokens: "ab", "abc", then no pair is new
    with pytest.raises(BabyGPTError) as refused:
        tokenizer_race_plans(Corpus.from_text("t", text), tiny_race(sizes=(400, 800)))
    assert str(refused.value).startswith("This text filled only ")
    assert "so bpe 400 and bpe 800 would be the same tokenizer: choose sizes up to" in str(refused.value)


# --- the verdicts: the ladder race's rule, every entry against the best ---------------------------------------------

def result(name: str, losses: tuple[float, ...], seeds: int = 3) -> RungResult:
    return RungResult(name, 1000, 3e-3, losses, seeds, len(losses), "bits per byte", EVAL_RESOLUTION)


def test_every_entry_is_judged_against_the_best_and_the_best_against_the_next():
    results = [result("char", (2.40, 2.42, 2.44)),  # worse than the best by 0.22, spread 0.04
               result("gpt2", (2.30, 2.36, 2.33)),  # within the spread of the best (0.11 > 0.11? no: 0.11 vs 0.06)
               result("bpe 512", (2.20, 2.22, 2.24)),  # the best: mean 2.22
               result("bpe 1024", (2.21, 2.25, 2.23))]  # within the seed spread of the best
    steps = against_best(results)
    assert steps["bpe 512"].lower == "bpe 1024" and steps["bpe 512"].verdict.startswith("within the seed spread")
    assert steps["bpe 1024"].verdict == "within the seed spread: no measured difference"
    assert steps["char"].verdict == "worse, by more than the seed spread"
    assert steps["char"].gain == pytest.approx(-0.20) and steps["char"].noise == pytest.approx(0.04)
    assert steps["gpt2"].verdict == "worse, by more than the seed spread"
    assert tokenizer_verdict(results) == (
        "Lowest so far: bpe 512 (2.220 bits per byte); bpe 1024 is within the seed spread of it, so this race cannot "
        "tell them apart on this text and budget: more seeds or more text seen may.")
    rows = tokenizer_table(results, {})
    assert [r["verdict"] for r in rows] == [
        "against the best (bpe 512): worse, by more than the seed spread",
        "against the best (bpe 512): worse, by more than the seed spread",
        "against the next best (bpe 1024): within the seed spread: no measured difference",
        "against the best (bpe 512): within the seed spread: no measured difference"]
    assert all(v is not None and v == v for row in rows for v in row.values()), "every cell is a number or words"


def test_a_clear_winner_and_one_seed_are_said_as_they_are():
    clear = [result("char", (2.5, 2.52)), result("bpe 512", (2.2, 2.21))]
    assert tokenizer_verdict(clear) == ("Lowest so far: bpe 512 (2.205 bits per byte), better than every other "
                                        "tokenizer by more than the seed spread, on this text and budget.")
    one = [result("char", (2.5,), 1), result("bpe 512", (2.2,), 1)]
    assert "With one seed no spread between seeds was measured" in tokenizer_verdict(one)
    assert against_best(one)["char"].verdict == "worse by 0.300, with no seed spread measured to compare it with"
    assert tokenizer_verdict([result("char", (2.5,))]) == ("Fewer than two tokenizers have evaluated yet: no "
                                                           "comparison so far.")
    assert tokenizer_table([result("gpt2", ())], {})[0]["verdict"] == "—"


def config(kind: str, vocab: int, preset: str = "gpt", asked: int | None = None) -> dict:
    tokenizer = {"kind": kind, **({"asked": asked} if asked else {})}
    return {"tokenizer": tokenizer, "model": {"preset": preset, "vocab_size": vocab}}


def test_a_race_is_read_by_tokenizer_when_its_runs_differ_in_tokenizer_else_by_rung():
    assert [tokenizer_name(config("char", 65)), tokenizer_name(config("bpe", 1000, asked=1024)),
            tokenizer_name(config("bpe", 700))] == ["char", "bpe 1024", "bpe 700"]
    tokenizers = [config("char", 65), config("bpe", 512, asked=512)]
    assert race_key(tokenizers)(tokenizers[1]) == "bpe 512"
    ladder = [config("char", 65, "bigram"), config("char", 65, "gpt")]
    assert race_key(ladder)(ladder[0]) == "bigram"
    entries = [RaceEntry(name, {}, True, {0: 3.0}) for name in ("gpt", "bpe 512", "bigram", "char", "bpe 512")]
    assert race_keys(entries) == ["bigram", "gpt", "bpe 512", "char"], "rungs bottom up, then in queue order"


def test_a_tokenizer_race_folds_into_one_row_named_as_one():
    rows = [{"id": f"r{i}", "group_id": "feedbeef", "preset": "gpt", "tokenizer": kind, "vocab_size": vocab,
             "best_val_loss": 2.0, "best_val_bpb": 1.5 + i / 10, "status": "done", "steps": 10 * (i + 1),
             "created_at": float(i), "label": "x", "owner": "me", "tokens": 0}
            for i, (kind, vocab) in enumerate([("char", 65), ("char", 65), ("bpe", 512), ("bpe", 512)])]
    (race,) = group_races(rows)
    assert (race["label"], race["preset"], race["runs"]) == ("tokenizer race · feed", "2 tokenizers × 2 seeds", 4)
    assert race["best_val_bpb"] == 1.5


# --- end to end: jobs of the scheduler, the report, the command line ------------------------------------------------

def test_a_tiny_tokenizer_race_runs_as_jobs_and_reads_in_bits_per_byte(small_text):
    corpus = Corpus.from_text("tiny", small_text)
    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=2, cores=2))
    group = scheduler.submit_group("b" * 22, tokenizer_race_plans(corpus, tiny_race(sizes=(300,))))
    assert len(scheduler.running()) == 2 and len(scheduler.store.queued()) == 4, "the race takes scheduler slots"
    assert latest_tokenizer_race(scheduler.store, "b" * 22) == group
    assert latest_tokenizer_race(scheduler.store, "someone else") is None
    deadline = time.time() + 240
    while race_running(scheduler.store, group):
        assert time.time() < deadline
        time.sleep(0.5)
    results = race_results(race_entries(scheduler.store, group))
    assert [r.preset for r in results] == ["char", "gpt2", "bpe 300"]
    assert {r.unit for r in results} == {"bits per byte"}
    assert all(r.finished == 2 and len(r.losses) == 2 and all(math.isfinite(x) for x in r.losses) for r in results)
    facts = entry_facts(scheduler.store, group)
    assert all(f.measured_on_training and abs(f.text_seen - 12_000) <= 12 * 16 * f.bytes_per_token / 2
               for f in facts.values()), facts  # the budget, within half a step
    assert facts["char"].steps > facts["bpe 300"].steps
    assert facts["bpe 300"].vocab_parameters == facts["bpe 300"].vocab_size * 16 * 2  # embedding and output rows
    bands = bands_by_text_seen(race_bands(race_entries(scheduler.store, group)), facts)
    assert all(abs(b.steps[-1] - 12.0) < 0.6 for b in bands.values()), "every band ends at 12 kB seen"
    report = race_report(scheduler.store, group)
    assert [e["tokenizer"] for e in report["entries"]] == ["char", "gpt2", "bpe 300"]
    assert report["verdict"].startswith("Lowest so far: ")
    assert all(e["verdict"]["words"] for e in report["entries"])
    json.dumps(report)  # what the command line prints


def test_the_command_line_races_the_tokenizers_and_prints_the_verdicts(tmp_path, capsys, small_text):
    path = tmp_path / "tiny.txt"
    path.write_text(small_text, encoding="utf-8")
    home = str(tmp_path / "runs")
    assert main(["--home", home, "race-tokenizers", "--data", str(path), "--vocab-sizes", "260",
                 "--bpe-split", "gpt2", "--text-bytes", "30000", "--seeds", "1", "--jobs", "3"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out.strip().splitlines()[-1])
    assert [e["tokenizer"] for e in report["entries"]] == ["char", "gpt2", "bpe 260"]
    assert all(e["seeds_done"] == 1 and e["unit"] == "bits per byte" for e in report["entries"])
    assert "runs queued on tiny.txt" in out.err
    assert main(["--home", home, "race-tokenizers", "--data", str(path), "--vocab-sizes", "260", "260"]) == 2
    assert "error: Each BPE vocabulary size may be raced once; two are the same." in capsys.readouterr().err


@pytest.mark.usefixtures("fresh_resources")
def test_the_lessons_page_races_the_tokenizers_as_jobs_and_stops_them():
    from streamlit.testing.v1 import AppTest

    from babygpt.status import RunStatus
    from tests.conftest import ROOT
    from tests.helpers import wait_for
    from ui.state import scheduler

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("views/lessons.py").run()
    assert "Which tokenizer?" in [t.label for t in at.tabs]
    at.multiselect(key="tokrace_sizes").set_value([384]).run()
    at.select_slider(key="tokrace_seeds").set_value(1).run()
    at.number_input(key="tokrace_kb").set_value(10).run()
    at.button(key="tokrace_start").click().run()
    refusals = [e.value for e in at.error]
    assert len(refusals) == 1 and refusals[0].startswith("With 10,000 bytes of text per entry, ")
    assert "would train only" in refusals[0] and not RunStore().list_runs(), "nothing queued for a refused budget"

    at.number_input(key="tokrace_kb").set_value(5000).run()  # thousands of steps: it trains until Stop
    at.button(key="tokrace_start").click().run()
    assert not at.error, [e.value for e in at.error]
    runs = RunStore().list_runs()
    assert sorted(r.name for r in runs) == sorted(f"tokenizer race: {t} · seed 1" for t in ("char", "gpt2", "bpe 384"))
    (table,) = [d for d in at.dataframe if "tokenizer" in d.value.columns]
    assert list(table.value["tokenizer"]) == ["char", "gpt2", "bpe 384"]
    assert at.button(key="tokrace_start").disabled and not at.button(key="tokrace_stop").disabled
    at.button(key="tokrace_stop").click().run()
    wait_for(lambda: not any(r.status.active for r in RunStore().list_runs()), 120, "every run of the race stopped")
    assert RunStatus.DONE not in {r.status for r in RunStore().list_runs()}
    scheduler().stop_all(wait=30)


def test_stopping_a_race_takes_its_queued_runs_off_before_a_freed_slot_can_start_one(small_text):
    """A worker stopped while it starts exits at once, and its end dispatches the queue from another thread: Stop
    must have taken the race's queued runs off first, or that freed slot starts the next run of the race."""
    import threading

    scheduler = Scheduler(RunStore(), SchedulerSettings(max_jobs=1, cores=2))
    group = scheduler.submit_group("c" * 22, tokenizer_race_plans(Corpus.from_text("tiny", small_text),
                                                                  tiny_race(text_bytes=400_000, sizes=(300,),
                                                                            seeds=(1,))))
    (job,) = scheduler.running()
    started = []
    real_start = scheduler.backend.start
    scheduler.backend.start = lambda *a, **k: started.append(a[1].id) or real_start(*a, **k)
    real_stop = job.stop

    def stop_and_free_the_slot(wait: float = 0.0) -> None:
        real_stop(wait)
        ended = threading.Thread(target=scheduler._job_ended, args=(job,))  # what the job's own thread does
        ended.start()
        ended.join(2.0)

    job.stop = stop_and_free_the_slot
    scheduler.stop_group(Actor(None, admin=True), group)
    deadline = time.time() + 60
    while race_running(scheduler.store, group):
        assert time.time() < deadline
        time.sleep(0.3)
    assert started == [], "no run of the stopped race started after Stop"
    assert [i.status.ended for i in scheduler.store.list_runs(group)] == [True]


def test_where_the_races_text_is_gone_the_table_says_its_text_seen_is_about_the_budget(small_text):
    from babygpt.orchestration.plan import plan_validation
    from babygpt.store.runs import build_config_document

    plan, _ = tokenizer_race_plans(Corpus.from_text("tiny", small_text), tiny_race(seeds=(1,)))[0]
    config = build_config_document(plan.model_config, plan.train_config, plan.tokenizer,
                                   {"validation": plan_validation(plan).to_dict()})
    per_token = text_bytes(plan.tokenizer, plan.split.train) / len(plan.split.train)
    counted = EntryFacts.from_config(config, per_token)
    assert counted.measured_on_training and counted.bytes_per_token == per_token
    guessed = EntryFacts.from_config(config)  # the text is not on this server: the validation text stands in
    assert not guessed.measured_on_training and guessed.bytes_per_token == plan_validation(plan).bytes_per_token
    row = tokenizer_table([result("char", (2.0, 2.1))], {"char": guessed})[0]
    assert row["text seen"].startswith("≈ ") and row["vocabulary"] == f"{plan.tokenizer.vocab_size:,}"
    assert tokenizer_table([result("char", (2.0, 2.1))], {"char": counted})[0]["text seen"] == "12 kB"
    assert EntryFacts.from_config({**config, "data": {}}) is None, "a run without its validation count has no facts"
