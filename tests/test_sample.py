import pytest
import torch

from babygpt.config import model_config_for_preset
from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.text.tokenizers import CharTokenizer
from babygpt.training.sample import SamplingConfig, filter_probs, generate, next_token_distribution, paced, prepare_prompt, stream

TEXT = "abcdefghij klmnop\n"


@pytest.fixture
def model_and_tokenizer():
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    model = build_model(model_config_for_preset("gpt", vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_embd=16, block_size=8))
    return model, tok


@pytest.mark.parametrize(("preset", "n_layer"), [("gpt", 2), ("single-head", 1), ("bigram", 0)])
def test_cached_equals_uncached(preset, n_layer):
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    model = build_model(model_config_for_preset(preset, vocab_size=tok.vocab_size, n_layer=n_layer, n_head=2, n_embd=16,
                                        block_size=8))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)  # far from uniform, so a wrong position or context shows in the text
    outs = [generate(model, tok, "abc", SamplingConfig(max_new_tokens=40, seed=3, use_cache=c)) for c in (True, False)]
    assert outs[0] == outs[1]
    assert outs[0].startswith("abc") and len(outs[0]) == 43


def test_seed_reproduces_and_differs(model_and_tokenizer):
    model, tok = model_and_tokenizer
    a = generate(model, tok, "ab", SamplingConfig(max_new_tokens=30, seed=1))
    b = generate(model, tok, "ab", SamplingConfig(max_new_tokens=30, seed=1))
    c = generate(model, tok, "ab", SamplingConfig(max_new_tokens=30, seed=2))
    assert a == b and a != c


def test_stream_yields_tokens_with_candidates(model_and_tokenizer):
    model, tok = model_and_tokenizer
    steps = list(stream(model, tok, "ab", SamplingConfig(max_new_tokens=5, seed=0, candidates=3)))
    assert len(steps) == 5
    for s in steps:
        assert len(s.candidates) == 3
        assert s.candidates[0].prob >= s.candidates[1].prob >= s.candidates[2].prob
        assert 0 < s.prob <= 1
        assert s.text == tok.decode([s.token_id])


def test_filters():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    greedy = filter_probs(logits, SamplingConfig(temperature=0))
    assert greedy.tolist() == [1.0, 0.0, 0.0, 0.0]
    top2 = filter_probs(logits, SamplingConfig(top_k=2))
    assert top2[2:].sum() == 0 and abs(top2.sum() - 1) < 1e-6
    nucleus = filter_probs(logits, SamplingConfig(top_p=0.5))
    assert nucleus.tolist() == [1.0, 0.0, 0.0, 0.0]
    hot = filter_probs(logits, SamplingConfig(temperature=100))
    assert hot.max() - hot.min() < 0.02


def test_prompts(model_and_tokenizer):
    model, tok = model_and_tokenizer
    empty = prepare_prompt(tok, "", 8)
    assert empty.ids == tok.encode("\n") and "Empty prompt" in empty.notices[0]
    long = prepare_prompt(tok, "abcdefghijklm", 8)
    assert "only its last 8 tokens are used" in long.notices[0]
    assert generate(model, tok, "abcdefghijklm", SamplingConfig(max_new_tokens=3, seed=0)).startswith("abcdefghijklm")
    with pytest.raises(BabyGPTError, match="never saw in training: 'Z'"):
        generate(model, tok, "aZ", SamplingConfig(max_new_tokens=3))
    with pytest.raises(BabyGPTError, match="top_p"):
        generate(model, tok, "a", SamplingConfig(top_p=0))


def test_next_token_distribution(model_and_tokenizer):
    model, tok = model_and_tokenizer
    top = next_token_distribution(model, tok, "abc", k=5)
    assert len(top) == 5
    assert all(top[i].prob >= top[i + 1].prob for i in range(4))
    full = next_token_distribution(model, tok, "abc", k=tok.vocab_size)
    assert abs(sum(c.prob for c in full) - 1) < 1e-5


def test_paced_keeps_a_schedule_from_the_start():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    def slow_items():
        for i in range(5):
            if i == 2:
                now[0] += 0.25  # a slow token: the next one is not held back on top of it
            yield i

    assert list(paced(slow_items(), 10.0, clock=lambda: now[0], sleep=sleep)) == [0, 1, 2, 3, 4]
    # item 1 waits until 0.1 s; item 2 comes late (0.35 s), item 3 (due 0.3 s) follows at once, item 4 waits to 0.4 s
    assert slept == [0.1, 0.05]
    assert list(paced(range(3), None, clock=lambda: 1 / 0, sleep=lambda s: 1 / 0)) == [0, 1, 2]
