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
    assert ("In the link: n_embd must be one of 16, 32, 48, 64, 96, 128, 192, 256, 384, got 100. "
            "The default is used.") in bad.problems
    assert any("In the link: lr must be between 1e-05 and 1, got 5. The default is used." == p for p in bad.problems)
    assert any("n_layer='two' in the link is not a whole number" in p for p in bad.problems)


def test_a_huge_or_long_value_is_named_in_a_short_sentence():
    huge, long = parse_link({"max_iters": "1e308"}), parse_link({"tokenizer": "x" * 5000, "lr": "y" * 5000})
    assert huge.problems == ["In the link: max_iters must be between 10 and 100,000, got 1e+308. The default is used."]
    assert all(len(p) < 200 for p in long.problems) and len(long.problems) == 2
    assert f"tokenizer='{'x' * 40}…' in the link is not one of" in long.problems[0]
    digits = parse_link({"max_iters": "1" * 5000, "muon_lr": "9" * 400, "lr": "inf"}).problems
    assert digits[0] == f"max_iters='{'1' * 40}…' in the link is too large a number for max_iters; the default is used."
    assert "too large a number for muon_lr" in digits[2] and "lr='inf' in the link is not a number" in digits[1]


def test_a_made_link_parses_back_and_drops_the_current_query():
    values = {"preset": "gpt", "n_embd": 128, "lr": 0.001, "lesson": "race", "dropout": 0.1, "corpus": None,
              "positional": "sinusoidal", "device": "cuda"}
    url = make_link("http://host:8501/train?user=secret-key-0123456789", values)
    assert url == "http://host:8501/train?preset=gpt&n_embd=128&dropout=0.1&positional=sinusoidal&lr=0.001&lesson=race"
    query = dict(pair.split("=") for pair in url.split("?")[1].split("&"))
    assert parse_link(query).values == {k: v for k, v in values.items() if k not in ("corpus", "device")}


def test_every_form_setting_but_the_device_travels_in_a_link_and_is_checked_by_the_same_rule():
    from babygpt.config import FORM_SETTINGS, form_defaults
    from babygpt.lessons.links import LINK_KEYS

    assert {s.name for s in FORM_SETTINGS} - set(LINK_KEYS) == {"device"}
    defaults = form_defaults()
    link = parse_link({s.name: str(defaults[s.name]) for s in FORM_SETTINGS})
    assert link.problems == [] and link.values == {k: v for k, v in defaults.items() if k not in ("preset", "device")}
    for setting in FORM_SETTINGS:
        if setting.high is not None:  # one past the top of the range is refused with the setting's own words
            too_big = setting.kind(setting.high + (1 if setting.kind is int else setting.high))
            assert parse_link({setting.name: str(too_big)}).problems == [
                f"In the link: {setting.problem(too_big)} The default is used."]


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
