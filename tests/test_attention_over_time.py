"""The probe prompt's attention is recorded at every evaluation, kept with resumes and shown on the page."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from babygpt.orchestration.recorder import PROBE_TOKENS
from babygpt.orchestration.runs import resume_run, start_run
from babygpt.store.runs import RunStore
from tests.conftest import ROOT
from tests.helpers import chart_spec, plotly_array, tiny_plan


def test_every_evaluation_records_the_probe_attention_and_a_resume_keeps_it(small_text):
    store = RunStore()
    plan = tiny_plan(small_text, max_iters=30, eval_interval=10)
    trainer, info = start_run(store, plan)
    trainer.run()
    assert store.attention_steps(info.id) == [0, 10, 20, 30]
    tokens, weights = store.attention_at(info.id, 20)
    assert len(tokens) == min(PROBE_TOKENS, plan.model_config.block_size)
    assert weights.shape == (2, 2, len(tokens), len(tokens)) and weights.dtype == np.float16
    assert weights.nbytes < 8_000  # a few KB per evaluation
    rows = weights.astype(np.float32).sum(-1)
    assert np.allclose(rows, 1.0, atol=1e-2)  # softmax rows
    assert np.allclose(np.triu(weights[0, 0].astype(np.float32), 1), 0)  # the causal mask
    assert not np.allclose(store.attention_at(info.id, 0)[1], weights)  # the heads changed while training
    trainer, _ = resume_run(store, info.id, plan.corpus, max_iters=40)
    trainer.run()
    assert store.attention_steps(info.id) == [0, 10, 20, 30, 40]  # one snapshot per step, not repeated


@pytest.mark.usefixtures("fresh_resources")
def test_the_attention_page_scrubs_through_the_steps(small_text):
    from babygpt.store.corpora import persist_corpus

    store = RunStore()
    plan = tiny_plan(small_text, max_iters=30, eval_interval=10)
    plan.corpus = persist_corpus(store, plan.corpus)
    trainer, info = start_run(store, plan)
    trainer.run()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    slider = at.select_slider(key=f"attention_step_{info.id}")
    assert slider.value == 30
    slider.set_value(10).run()
    assert any("How the heads formed" in s.value for s in at.subheader)
    assert not at.exception
    drawn = chart_spec(at, "attention_forming")
    tokens, weights = store.attention_at(info.id, 10)
    assert drawn["layout"]["title"]["text"].endswith("at step 10")
    for head, trace in enumerate(drawn["data"]):  # the chart is step 10's stored weights, head by head
        z = plotly_array(trace["z"])
        expected = np.tril(weights[0, head].astype(np.float64))
        assert np.allclose(np.nan_to_num(z), expected, atol=1e-6)
    final = store.attention_at(info.id, 30)[1]
    assert not np.allclose(final[0].astype(np.float64), weights[0].astype(np.float64)), "steps 10 and 30 differ"

