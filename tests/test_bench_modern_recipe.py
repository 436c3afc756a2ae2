"""bench/modern_recipe.py's pure parts: the variants it measures are modern as shipped and one change each, run by
the command line exactly as ``--preset modern`` trains; the verdict against modern respects the seeds' spread."""

from dataclasses import replace

from babygpt.cli import build_parser
from babygpt.config import MODERN_SWITCHES, model_config_for_preset, preset_train_config
from bench.modern_recipe import (
    GRID,
    earlier_steps,
    markdown_tables,
    paired_ratios,
    seconds_range,
    spread_verdict,
    steps_verdict,
    time_ratio_range,
    variants,
)


def _parsed(args: list[str]):
    return build_parser().parse_args(["train", *args])


def test_the_shipped_variant_is_exactly_what_preset_modern_trains():
    shipped = variants()[0]
    assert shipped.name == "modern"
    vocab = 65
    assert shipped.model_config(vocab) == replace(model_config_for_preset("modern", vocab_size=vocab), preset="gpt")
    expected = preset_train_config("modern")
    trained = shipped.train_config()
    for name in ("batch_size", "max_iters", "warmup_iters", "lr", "muon_lr"):
        assert getattr(trained, name) == getattr(expected, name), name
    assert trained.optimizer_for(shipped.model_config(vocab)) == "muon" and trained.eval_interval == GRID
    args = _parsed(shipped.cli_args())
    assert args.positional == "rope" and args.qk_norm and args.optimizer == "muon" and args.batch_size == 24
    assert not {"--norm", "--value-embeddings", "--logit-softcap"} & set(shipped.cli_args()), "not modern's"
    assert "--eval-interval" not in shipped.cli_args(), "every variant evaluates on the one grid"


def test_every_switch_is_taken_out_or_put_in_once():
    names = [v.name for v in variants()]
    assert len(names) == len(set(names))
    for switch in MODERN_SWITCHES:
        short = switch.preset.removeprefix("gpt+")
        assert (f"modern without {short}" if switch.in_modern else f"modern with {short}") in names
    without_muon = next(v for v in variants() if v.name == "modern without muon")
    assert without_muon.train_config().optimizer == "adamw" and "--optimizer" not in without_muon.cli_args()


def test_the_verdict_against_modern_needs_more_than_the_spread_of_seeds_and_timing_rounds():
    assert seconds_range([200, 225], [100.0, 120.0]) == (20.0, 27.0)
    # a drifting machine: both slow in round 2, the paired ratio is steady where the milliseconds are not
    ratios = paired_ratios([90.0, 135.0, 91.0], [100.0, 150.0, 100.0])
    assert ratios == [0.9, 0.9, 0.91]
    same_steps = time_ratio_range([200, 200], [200, 200], ratios)
    assert same_steps == (0.9, 0.91) and spread_verdict(same_steps) == \
        "faster than modern beyond the spread of seeds and timing rounds"
    # a cheaper step that needs more steps on one seed: the seeds' spread is inside the range
    assert spread_verdict(time_ratio_range([200, 225], [200, 225], ratios)) == \
        "within the spread of seeds and timing rounds"
    assert spread_verdict(time_ratio_range([300, 325], [200, 225], [1.0, 1.05])) == \
        "slower than modern beyond the spread of seeds and timing rounds"
    assert steps_verdict([250, 275], [200, 225]) == "more steps than modern on every seed"
    assert steps_verdict([200, 250], [200, 225]) == "as many steps as modern, within the seeds' spread"
    assert steps_verdict([175, 175], [200, 225]) == "fewer steps than modern on every seed"
    assert steps_verdict([None, 250], [200, 225]) == "missed the target within its steps on some seed"


def test_an_earlier_runs_steps_are_taken_as_they_were_for_timing_again():
    chosen = variants()[:2]
    earlier = {"texts": {"t": {"target_val_loss": 1.5, "variants": [
        {"variant": chosen[0].name, "steps": [200, 225]}, {"variant": chosen[1].name, "steps": [None, 250]}]}}}
    targets, steps = earlier_steps(earlier, ["t"], chosen, 2)
    assert targets == {"t": 1.5}
    assert steps == {("t", chosen[0].name, 1337): 200, ("t", chosen[0].name, 1): 225,
                     ("t", chosen[1].name, 1337): None, ("t", chosen[1].name, 1): 250}


def test_the_docs_tables_say_missed_and_give_the_paired_ranges():
    row = {"steps": [200, 225], "ms_per_step": 130.4, "step_cost_against_modern": {"median": 1.0, "range": [1.0, 1.0]},
           "time_ratio_range": [0.89, 1.12], "against_modern": "1.00× modern's time; within the spread of seeds and "
                                                              "timing rounds"}
    missed = {"steps": [300, None], "ms_per_step": 120.0, "step_cost_against_modern": {"median": 0.95,
                                                                                       "range": [0.88, 0.97]},
              "against_modern": "missed the target within its steps on some seed"}
    table = markdown_tables({"texts": {"t": {"target_val_loss": 1.8805, "variants": [
        {"variant": "modern", **row}, {"variant": "modern without qk-norm", **missed}]}}})
    assert "**t** (target 1.881)" in table
    assert "| modern | 200, 225 | 1.00× (1.00–1.00) | 130 | 1.00× modern's time (0.89–1.12×) | within the spread" in table
    assert "| modern without qk-norm | 300, missed | 0.95× (0.88–0.97) | 120 | — | missed the target" in table
