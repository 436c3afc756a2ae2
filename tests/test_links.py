"""Lesson links: every value checked, bad ones named and replaced by the default, never the user's key."""

import pytest
from streamlit.testing.v1 import AppTest

from babygpt.lessons.links import make_link, parse_link
from tests.conftest import ROOT


def test_a_link_is_parsed_and_every_bad_value_is_named():
    link = parse_link({"corpus": "python-docs", "tokenizer": "gpt2", "preset": "residual", "n_embd": "64",
                       "lr": "3e-3", "lesson": "surprise", "user": "someone-else-0123456789"})
    assert link.values == {"corpus": "python-docs", "tokenizer": "gpt2", "preset": "residual", "n_embd": 64,
                           "lr": 0.003, "lesson": "surprise"}  # no user key
    assert link.problems == []
    bad = parse_link({"preset": "transformer", "n_embd": "100", "n_layer": "two", "lr": "5", "max_iters": "1.5",
                      "corpus": "../etc/passwd"})
    assert bad.values == {}
    assert len(bad.problems) == 6
    assert "preset='transformer' in the link is not one of bigram" in bad.problems[1]
    assert any("lr=5 in the link is outside 1e-05–1" in p for p in bad.problems)
    assert any("n_layer='two' in the link is not a whole number" in p for p in bad.problems)


def test_a_made_link_parses_back_and_drops_the_current_query():
    values = {"preset": "gpt", "n_embd": 128, "lr": 0.001, "lesson": "race", "dropout": 0.1, "corpus": None}
    url = make_link("http://host:8501/train?user=secret-key-0123456789", values)
    assert url == "http://host:8501/train?preset=gpt&n_embd=128&lesson=race&lr=0.001"
    query = dict(pair.split("=") for pair in url.split("?")[1].split("&"))
    assert parse_link(query).values == {"preset": "gpt", "n_embd": 128, "lesson": "race", "lr": 0.001}


@pytest.mark.usefixtures("fresh_resources")
def test_opening_a_link_sets_the_page_and_a_bad_value_is_a_warning():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update({"preset": "residual", "n_embd": "64", "n_layer": "oops", "lesson": "scale"})
    at.run()
    assert not at.exception
    assert any("n_layer='oops' in the link is not a whole number" in w.value for w in at.warning)
    at.switch_page("views/train.py").run()
    assert at.selectbox(key="hp_preset").value == "residual"
    assert at.select_slider(key="hp_n_embd").value == 64
    assert at.slider(key="hp_n_layer").value == 4  # the bad value fell back to the default
    at.switch_page("views/lessons.py").run()
    assert not at.exception
