"""Per-token surprise: the same numbers as the model's own loss, windowed as in training."""

import math

import pytest
import torch
import torch.nn.functional as F

from babygpt.config import model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.figures.viz import surprise_html
from babygpt.lessons.surprise import TokenSurprise, differences, mean_loss, surprise, validation_stretch
from babygpt.model.gpt import build_model
from babygpt.text.tokenizers import CharTokenizer


@pytest.fixture
def model_and_tokenizer():
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("abcdefgh \n")
    model = build_model(model_config_for_preset("gpt", vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16))
    return model, tok


def test_losses_are_the_models_cross_entropy_at_each_position(model_and_tokenizer):
    model, tok = model_and_tokenizer
    text = "abcdefg"  # 7 tokens: fits one block
    got = surprise(model, tok, text)
    ids = torch.tensor([tok.encode(text)])
    model.eval()
    logits, _ = model(ids)
    expected = F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    assert got[0].loss is None and [t.text for t in got] == list(text)
    assert [t.loss for t in got[1:]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert mean_loss(got) == pytest.approx(expected.mean().item(), abs=1e-5)
    assert got[3].prob == pytest.approx(math.exp(-got[3].loss))
    assert [c.prob for c in got[3].expected] == sorted((c.prob for c in got[3].expected), reverse=True)


def test_a_long_text_is_predicted_from_the_last_block_of_tokens(model_and_tokenizer):
    model, tok = model_and_tokenizer
    text = "abcdefgh abcdefgh"  # 17 tokens, block 8
    got = surprise(model, tok, text)
    ids = tok.encode(text)
    window = torch.tensor([ids[12 - 8 + 1: 13]])  # the 8 tokens up to position 12 predict token 13
    logits, _ = model(window)
    direct = F.cross_entropy(logits[0, -1:], torch.tensor([ids[13]])).item()
    assert got[13].loss == pytest.approx(direct, abs=1e-5)


def test_two_runs_compare_token_by_token_only_on_the_same_tokens():
    a = [TokenSurprise("a", None, None, ()), TokenSurprise("b", 2.0, 0.1, ())]
    b = [TokenSurprise("a", None, None, ()), TokenSurprise("b", 0.5, 0.6, ())]
    assert differences(a, b) == [None, -1.5]
    with pytest.raises(BabyGPTError, match="different tokens"):
        differences(a, [TokenSurprise("ab", None, None, ())])
    html = surprise_html(b, differences(a, b))
    assert "rgba(37,99,235" in html and "the second run: -1.50" in html  # blue: less surprised


def test_the_stretch_is_the_start_of_the_validation_split():
    text = "train text here " * 9 + "validation words come last"
    assert validation_stretch(text, 0.1, 12) == text[int(len(text) * 0.9):][:12].rsplit(" ", 1)[0].rstrip()
    html = surprise_html([TokenSurprise("<", None, None, ()), TokenSurprise("&", 5.0, 0.007, ())])
    assert "&lt;" in html and "&amp;" in html and "rgba(220,38,38,1.00)" in html


def test_a_model_without_the_mask_sees_only_its_own_window():
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("abcdefgh \n")
    config = model_config_for_preset("gpt", vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16,
                                     causal=False)
    model = build_model(config).eval()
    with torch.no_grad():  # non-zero everywhere: zero-initialised projections would hide what attention sees
        for param in model.parameters():
            param.normal_(0, 0.3)
    ids = tok.encode("abcdefgh abcdefgh")
    got = surprise(model, tok, "abcdefgh abcdefgh")
    for i in (2, 12):  # a window shorter than a block (no padding may leak in) and a full one
        window = torch.tensor([ids[max(0, i + 1 - 8): i + 1]])
        direct = F.cross_entropy(model(window)[0][0, -1:], torch.tensor([ids[i + 1]])).item()
        assert got[i + 1].loss == pytest.approx(direct, abs=1e-5)
