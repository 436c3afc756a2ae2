"""The training form on the modern rungs: it shows what the preset fixes (RoPE, Muon, …) as the run will use it, and
the learning-rate chart shows Muon's peak beside AdamW's."""

import json
import math

import pytest

from babygpt.cli import build_parser, main
from babygpt.config import (
    TrainConfig,
    model_config_for_preset,
    preset_settings,
    preset_switch_sentence,
    preset_train_config,
    preset_training,
    preset_training_words,
)
from babygpt.errors import BabyGPTError
from babygpt.figures.viz import loss_figure, lr_figure
from babygpt.store.runs import RunStore
from tests.helpers import app

pytestmark = pytest.mark.usefixtures("fresh_resources")


def train_help() -> str:
    [sub] = [a for a in build_parser()._actions if a.dest == "command"]
    return sub.choices["train"].format_help()


def lr_chart(at) -> dict:
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if "Learning-rate" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    return chart


@pytest.mark.parametrize("preset", ["modern", "gpt+rope"])
def test_a_rope_preset_shows_rotary_positions_switched_off_and_gives_back_the_users_choice(preset):
    at = app()
    at.switch_page("views/train.py").run()
    at.radio(key="hp_positional").set_value("sinusoidal").run()
    at.selectbox(key="hp_preset").set_value(preset).run()
    assert not at.exception and not at.error
    assert "hp_positional" not in [r.key for r in at.radio], "learned / sinusoidal is not offered on a RoPE rung"
    shown = at.radio(key="hp_positional_fixed")
    assert shown.value == "rope" and shown.options == ["rope"] and shown.disabled
    caption = next(c.value for c in at.caption if c.value.startswith(f"{preset} fixes:"))
    assert "positional = rope (rotary positions" in caption
    at.selectbox(key="hp_preset").set_value("gpt").run()
    assert at.radio(key="hp_positional").value == "sinusoidal", "the user's own choice waits for gpt"
    assert not [c for c in at.caption if "fixes:" in c.value], "gpt fixes nothing beyond its own form"


def test_every_switch_modern_fixes_is_named_on_the_form_with_the_value_it_trains_with():
    at = app()
    at.switch_page("views/train.py").run()
    at.selectbox(key="hp_preset").set_value("modern").run()
    caption = next(c.value for c in at.caption if c.value.startswith("modern fixes:"))
    config = model_config_for_preset("modern", positional="learned")  # what the form passed before: ignored
    for name, value in preset_settings("modern").items():
        trained = getattr(config, name) if name != "optimizer" else value
        assert trained == value and f"{name} = " in caption, name
    assert "positional = rope" in caption and "qk_norm = on" in caption
    assert "optimizer = muon" in caption and "at muon_lr (0.02)" in caption
    assert "norm = " not in caption.replace("qk_norm = ", "") and "softcap" not in caption, "not modern's"
    assert preset_switch_sentence("gpt+swiglu") == "gpt+swiglu fixes: activation = swiglu (gated SiLU)."


def test_a_counterfactual_without_positions_turns_rope_off_too():
    assert model_config_for_preset("modern", positional="none").positional == "none"
    assert model_config_for_preset("gpt+rope", positional="none").positional == "none"
    assert model_config_for_preset("gpt+rope", positional="learned").positional == "rope"


def test_the_lr_chart_shows_muons_peak_beside_adamws_labelled():
    at = app()
    at.switch_page("views/train.py").run()
    assert [t.get("name") for t in lr_chart(at)["data"]] == ["learning rate"]
    assert not [c for c in at.caption if "muon_lr" in c.value]
    at.selectbox(key="hp_preset").set_value("gpt+muon").run()
    traces = {t["name"]: t["y"] for t in lr_chart(at)["data"]}
    assert set(traces) == {"AdamW: embeddings, head, gains, biases", "Muon: hidden matrices"}
    assert max(traces["Muon: hidden matrices"]) == pytest.approx(0.02)
    assert max(traces["AdamW: embeddings, head, gains, biases"]) == pytest.approx(1e-3)
    assert lr_chart(at)["layout"]["yaxis"]["type"] == "log", "peaks tenfold apart: AdamW's line not flat on zero"
    [caption] = [c.value for c in at.caption if "peak of 0.02 (muon_lr" in c.value]
    assert "peak of 0.001 (the learning rate)" in caption


def test_muons_rate_is_on_the_form_where_the_preset_trains_with_muon_and_reaches_the_run():
    at = app()
    at.switch_page("views/train.py").run()
    assert "hp_muon_lr" not in [n.key for n in at.number_input], "gpt trains with AdamW alone: no Muon rate offered"
    at.selectbox(key="hp_preset").set_value("modern").run()
    rate = at.number_input(key="hp_muon_lr")
    assert rate.label == "Muon's learning rate" and rate.value == pytest.approx(0.02)
    rate.set_value(0.01).run()
    assert not at.exception and not at.error
    assert any("at muon_lr (0.01)" in c.value for c in at.caption if c.value.startswith("modern fixes:"))
    traces = {t["name"]: t["y"] for t in lr_chart(at)["data"]}
    assert max(traces["Muon: hidden matrices"]) == pytest.approx(0.01), "the schedule the run would train with"
    assert any("peak of 0.01 (muon_lr: Muon's learning rate above" in c.value for c in at.caption)
    at.selectbox(key="hp_preset").set_value("gpt").run()
    assert "hp_muon_lr" not in [n.key for n in at.number_input]
    # a bad rate left on modern's field neither blocks gpt, which has no such field, nor travels in its link
    at.selectbox(key="hp_preset").set_value("modern").run()
    at.number_input(key="hp_muon_lr").set_value(0.0).run()
    assert any("muon_lr must be between 0.0001 and 1, got 0" in e.value for e in at.error)
    at.selectbox(key="hp_preset").set_value("gpt").run()
    assert not at.error, [e.value for e in at.error]
    [link] = [c.value for c in at.code if "preset=gpt&" in c.value]
    assert "muon_lr" not in link, "the share link carries only what gpt uses"
    at.selectbox(key="hp_preset").set_value("gpt+muon").run()
    assert any("muon_lr must be between" in e.value for e in at.error), "back on a Muon preset, it is named again"
    [link] = [c.value for c in at.code if "preset=gpt%2Bmuon&" in c.value]
    assert "muon_lr=0.0" in link


def test_lr_figure_draws_one_line_without_muon():
    assert len(lr_figure([0, 1], [1e-3, 1e-4]).data) == 1
    assert [t.name for t in lr_figure([0, 1], [1e-3, 1e-4], muon_lrs=[0.02, 0.002]).data] == [
        "AdamW: embeddings, head, gains, biases", "Muon: hidden matrices"]


def evals_from(val_losses: list[float]) -> list[dict]:
    return [{"step": 10 * i, "elapsed_s": float(i), "train_loss": v, "val_loss": v} for i, v in enumerate(val_losses)]


def test_a_start_on_the_uniform_line_is_called_that_not_below_it():
    uniform = math.log(65)  # 4.174
    notes = [a.text for a in loss_figure([], evals_from([4.173, 3.0]), vocab_size=65).layout.annotations]
    assert notes == ["uniform guess (ln V) 4.17<br>starts at the uniform guess<br>below it by step 10"]
    notes = [a.text for a in loss_figure([], evals_from([uniform + 0.01]), vocab_size=65).layout.annotations]
    assert notes == ["uniform guess (ln V) 4.17<br>starts at the uniform guess"]
    notes = [a.text for a in loss_figure([], evals_from([4.1, 3.0]), vocab_size=65).layout.annotations]
    assert notes == ["uniform guess (ln V) 4.17<br>below it from the start"], "0.07 below the line is below it"


def test_modern_brings_its_training_recipe_and_what_is_chosen_wins():
    recipe = preset_training("modern")
    assert recipe == {"batch_size": 24, "max_iters": 300, "warmup_iters": 30, "lr": 2e-3, "min_lr": 2e-4,
                      "muon_lr": 0.02, "eval_interval": 50}
    assert preset_train_config("modern").batch_size == 24 and preset_train_config("modern").max_iters == 300
    chosen = preset_train_config("modern", batch_size=8, max_iters=1000)
    assert (chosen.batch_size, chosen.max_iters, chosen.warmup_iters) == (8, 1000, 30)
    for preset in ("gpt", "gpt+muon", "gpt+rope", "bigram"):  # a single switch trains as gpt: a race compares ideas
        assert preset_training(preset) == {} and preset_train_config(preset) == TrainConfig().validate()
    with pytest.raises(BabyGPTError, match=r"eval_interval \(500\) is larger than max_iters \(300\)"):
        preset_train_config("modern", eval_interval=500)
    assert preset_training_words("modern") == ("batch 24 · 300 steps · warm-up 30 · learning rate 0.002 · decaying to "
                                               "0.0002 · Muon's rate 0.02 · an evaluation every 50 steps")


def test_the_command_line_trains_modern_with_its_recipe_unless_told_otherwise(tmp_path, capsys, small_text):
    text = tmp_path / "cats.txt"
    text.write_text(small_text)
    tiny = ["--data", str(text), "--preset", "modern", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
            "--block-size", "16", "--device", "cpu", "--dtype", "float32", "--eval-iters", "2"]
    assert main(["--home", str(tmp_path), "train", *tiny, "--max-iters", "20", "--eval-interval", "10"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    train = RunStore(tmp_path).get(summary["run"]).config["train"]
    assert (train["batch_size"], train["warmup_iters"], train["max_iters"]) == (24, 30, 20)
    assert main(["--home", str(tmp_path), "train", *tiny, "--max-iters", "10", "--eval-interval", "10",
                 "--batch-size", "4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert RunStore(tmp_path).get(summary["run"]).config["train"]["batch_size"] == 4
    help_text = train_help()
    assert "(default 12; modern: 24)" in help_text and "(default 2000; modern: 300)" in help_text


def test_the_form_offers_the_recipe_on_modern_and_puts_it_in_the_settings():
    at = app()
    at.switch_page("views/train.py").run()
    assert not [b for b in at.button if b.key == "hp_recipe"], "gpt has no recipe of its own"
    at.selectbox(key="hp_preset").set_value("modern").run()
    [button] = [b for b in at.button if b.key == "hp_recipe"]
    assert button.label == ("Use modern's training recipe: batch 24 · 300 steps · warm-up 30 · learning rate 0.002 · "
                            "decaying to 0.0002 · Muon's rate 0.02 · an evaluation every 50 steps")
    before = at.number_input(key="hp_max_iters").value
    assert before == 1000, "the app's own default until the recipe is asked for"
    button.click().run()
    assert not at.exception and not at.error
    assert at.number_input(key="hp_max_iters").value == 300 and at.slider(key="hp_batch_size").value == 24
    assert at.number_input(key="hp_eval_interval").value == 50 and at.number_input(key="hp_lr").value == 2e-3
    assert not [b for b in at.button if b.key == "hp_recipe"]
    assert any(c.value.startswith("Training with modern's recipe: batch 24 · 300 steps") for c in at.caption)
    at.number_input(key="hp_max_iters").set_value(600).run()
    assert [b for b in at.button if b.key == "hp_recipe"], "changed again: the recipe is offered again"
