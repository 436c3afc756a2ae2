"""The training form on the modern rungs: it shows what the preset fixes (RoPE, Muon, …) as the run will use it, and
the learning-rate chart shows Muon's peak beside AdamW's."""

import json
import math

import pytest

from babygpt.config import model_config_for_preset, preset_settings, preset_switch_sentence
from babygpt.figures.viz import loss_figure, lr_figure
from tests.helpers import app

pytestmark = pytest.mark.usefixtures("fresh_resources")


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
    assert "norm = rmsnorm" in caption and "qk_norm = on" in caption and "value_embeddings = on" in caption
    assert "logit_softcap = 15" in caption and "optimizer = muon" in caption and "at muon_lr (0.02)" in caption
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
    [caption] = [c.value for c in at.caption if "peak of 0.02 (muon_lr" in c.value]
    assert "peak of 0.001 (the learning rate)" in caption


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
