"""The Inside page's two texts, with and without a head, come from one library function
(``babygpt.orchestration.inside.ablated_samples``) and are written once per run, text and choice: a rerun of the
page draws them again without writing them again."""

from __future__ import annotations

from babygpt.interpret.looking import affordable_sample_tokens, head_ablation_for, sample_with
from babygpt.orchestration import inside
from babygpt.orchestration.inside import ablated_samples
from tests.helpers import app
from tests.test_inside_views import cats_run  # noqa: F401  (the fixture: a two-layer run trained here)


def test_the_two_texts_share_a_seed_and_differ_by_the_head(cats_run):  # noqa: F811
    store, info, plan = cats_run
    loaded = store.load(info.id)
    ids = plan.split.val
    samples = ablated_samples(loaded, ids, 1, 0, "mean", "the cat")
    prompt = loaded.tokenizer.encode("the cat")
    tokens = affordable_sample_tokens(loaded.model_config, len(prompt))
    ablation = head_ablation_for(loaded.model, 1, 0, "mean", ids[:16][None])
    assert samples.tokens == tokens
    assert samples.intact == sample_with(loaded.model, loaded.tokenizer, prompt, tokens, seed=0)
    assert samples.ablated == sample_with(loaded.model, loaded.tokenizer, prompt, tokens, seed=0, ablation=ablation)
    assert samples.intact.startswith("the cat") and samples.ablated.startswith("the cat")
    assert (samples.layer, samples.head, samples.mode) == (1, 0, "mean")


def test_a_rerun_of_the_inside_page_does_not_write_the_texts_again(cats_run, monkeypatch):  # noqa: F811
    _, info, _ = cats_run
    calls = []
    real = inside.ablated_samples

    def counted(loaded, ids, layer, head, mode, prompt):
        calls.append((layer, head, mode))
        return real(loaded, ids, layer, head, mode, prompt)
    monkeypatch.setattr(inside, "ablated_samples", counted)
    at = app()
    at.session_state["active_run"] = info.id
    at.switch_page("views/inside.py").run()
    at.toggle(key="inside_ablate").set_value(True).run()
    assert not at.exception and not at.error
    assert len(calls) == 1
    shown = (at.code[0].value, at.code[1].value)
    at.run()
    at.selectbox(key="inside_kind").set_value("induction").run()  # another widget of the page: a rerun
    assert not at.exception and len(calls) == 1, "every rerun drew the same texts without writing them"
    assert (at.code[0].value, at.code[1].value) == shown
    worst = calls[0][:2]
    other = next((layer, head) for layer in range(2) for head in range(2) if (layer, head) != worst)
    at.selectbox(key="inside_without_zero").set_value(other).run()
    assert len(calls) == 2 and calls[-1] == (*other, "zero"), "another head is written once"
    at.selectbox(key="inside_without_zero").set_value(worst).run()
    assert len(calls) == 2 and (at.code[0].value, at.code[1].value) == shown, "and the first comes back cached"
