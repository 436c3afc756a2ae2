"""A run on a BPE learned from its text, to Hugging Face and back: ``transformers.AutoTokenizer`` gives the run's ids
on varied texts for every pre-split, the model gives Baby GPT's logits, an import gives back a ``bpe`` run with the
same ids, and a folder that only looks like such a BPE is refused in a sentence."""

from __future__ import annotations

import json
import shutil

import pytest
import regex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from babygpt.errors import BabyGPTError
from babygpt.store.huggingface import export_hf, export_hf_zip, import_hf, import_hf_zip
from babygpt.store.runs import RunStore
from babygpt.text.bpe import SPLIT_PATTERNS, train_bpe
from babygpt.text.bpe_files import BYTE_ALPHABET, hf_pattern
from babygpt.text.bpe_tokenizer import BPETokenizer
from tests.conftest import SHAKESPEARE
from tests.helpers import LIMITS
from tests.import_support import LEAKS, recorded_run
from tests.needs import required_module

transformers = required_module("transformers", "pip install -r requirements.txt")
tokenizers = required_module("tokenizers", "pip install -r requirements.txt")

MIXED = ("Le café où l'on s'assied — naïve façade. 東京は日本の首都です。Москва — столица России. "
         "العربية تكتب من اليمين. 🎉🎉 emoji 🎉 and numbers 1234567 12 3.\n\n\tTabs, and   spaces.  \n"
         "DON'T we'll I'VE it's 2024-12-06 3.14159 ١٢٣٤٥ \r\n  trailing   ")
VARIED = [MIXED, "the cat sat on the mat", "  \n\n   x \t\r\n", "1234567890123", "don't DON'T Don'T", "🎉" * 7,
          "a", "", "ünïcödé ☃ 東京 " * 3, "x  \n  y\n\n\n  z   "]


@pytest.fixture(scope="module")
def training_text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")[:20_000] + MIXED * 3


@pytest.fixture(scope="module", params=["gpt4", "gpt2", None], ids=lambda s: s or "none")
def bpe(request, training_text) -> BPETokenizer:
    return BPETokenizer(train_bpe(training_text, 600, request.param))


def exported(tmp_path, text, tokenizer, **model):
    store, run_id = recorded_run(text, tokenizer, **model)
    return store, run_id, export_hf(store, run_id, tmp_path / "export")


def test_transformers_gives_the_runs_ids_logits_and_text(bpe, training_text, tmp_path):
    store, run_id, folder = exported(tmp_path, training_text, bpe)
    loaded = store.load(run_id)
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    for text in [*VARIED, training_text[:3000]]:
        ids = loaded.tokenizer.encode(text)
        assert theirs(text)["input_ids"] == ids, f"the run's ids for {text[:30]!r}"
        assert theirs.decode(ids) == text
    assert loaded.tokenizer.to_dict() == bpe.to_dict() and loaded.model_config.vocab_size == bpe.vocab_size
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = loaded.tokenizer.encode("東京 🎉 the cat")[:32]
    with torch.no_grad():
        torch.testing.assert_close(model(torch.tensor([ids])).logits, loaded.model.eval()(torch.tensor([ids]))[0],
                                   rtol=1e-5, atol=1e-5)


def test_the_folder_holds_gpt2s_two_files_too_and_they_agree_where_gpt2s_pattern_cuts(training_text, tmp_path):
    bpe = BPETokenizer(train_bpe(training_text, 500, "gpt2"))
    _, _, folder = exported(tmp_path, training_text, bpe)
    assert {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert vocab[BYTE_ALPHABET[ord(" ")]] == 32 == vocab["Ġ"] and len(vocab) == bpe.vocab_size
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version") and len(lines) == 1 + len(bpe.bpe.merges)
    slow = transformers.GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))  # the files alone
    for text in VARIED:
        assert slow(text)["input_ids"] == bpe.encode(text), text[:30]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "byte-level BPE learned from the training text: every text encodes" in card and "bits per byte" in card


def test_an_exported_bpe_run_imports_as_the_same_bpe_run(bpe, training_text, tmp_path):
    store, run_id, folder = exported(tmp_path, training_text, bpe)
    original = store.load(run_id)
    back = RunStore(tmp_path / "back")
    imported = back.load(import_hf(back, folder, LIMITS).id)
    assert imported.tokenizer.kind == "bpe" and imported.tokenizer.bpe.merges == bpe.bpe.merges
    assert imported.tokenizer.bpe.split == bpe.bpe.split
    for text in VARIED:
        assert imported.tokenizer.encode(text) == original.tokenizer.encode(text)
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(imported.model.state_dict()[name], tensor), name
    (tmp_path / "export.zip").write_bytes(export_hf_zip(store, run_id))
    zipped = back.load(import_hf_zip(back, tmp_path / "export.zip", LIMITS).id)
    assert zipped.tokenizer.encode(MIXED) == original.tokenizer.encode(MIXED)


def test_gpt2s_two_files_alone_import_as_a_bpe_cut_by_gpt2s_pattern(training_text, tmp_path):
    bpe = BPETokenizer(train_bpe(training_text, 500, "gpt4"))
    _, _, folder = exported(tmp_path, training_text, bpe)
    (folder / "tokenizer.json").unlink()
    imported = RunStore(tmp_path / "back").load(import_hf(RunStore(tmp_path / "back"), folder, LIMITS).id)
    assert imported.tokenizer.kind == "bpe" and imported.tokenizer.bpe.split == "gpt2"
    assert imported.tokenizer.bpe.merges == bpe.bpe.merges, "the same merges; the files say nothing of GPT-4's split"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.characters(exclude_categories=("Cn", "Cs")), max_size=60))
def test_hugging_faces_patterns_cut_any_text_as_the_runs_do(text):
    """Oniguruma (Hugging Face) and Python's regex read the exported patterns alike, on any text of assigned
    characters (a code point Unicode assigned after Python's own tables may be a letter to one library and not yet
    to the other); GPT-2's is exported as GPT-2's own ByteLevel regex, held to tiktoken's pattern here."""
    pre = tokenizers.pre_tokenizers
    for split in SPLIT_PATTERNS:
        cut = pre.Split(tokenizers.Regex(hf_pattern(split)), "isolated").pre_tokenize_str(text)
        assert [piece for piece, _ in cut] == regex.findall(SPLIT_PATTERNS[split], text), split
    byte_level = pre.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(text)
    as_bytes = ["".join(BYTE_ALPHABET[b] for b in piece.encode("utf-8", errors="surrogatepass"))
                for piece in regex.findall(SPLIT_PATTERNS["gpt2"], text)]
    assert [piece for piece, _ in byte_level] == as_bytes


def test_gpt4s_digit_groups_are_written_so_that_hugging_face_keeps_them_to_three():
    assert r"\p{N}{1,3}+" in SPLIT_PATTERNS["gpt4"] and r"\p{N}{1,3}+" not in hf_pattern("gpt4")
    cut = tokenizers.pre_tokenizers.Split(tokenizers.Regex(hf_pattern("gpt4")), "isolated")
    assert [p for p, _ in cut.pre_tokenize_str("1234567")] == ["123", "456", "7"]


def _edited(folder, tmp_path, name, change):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    document = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    change(document)
    (copy / "tokenizer.json").write_text(json.dumps(document), encoding="utf-8")
    return copy


def _swap_first_two_bytes(doc):
    vocab = doc["model"]["vocab"]
    a, b = BYTE_ALPHABET[0], BYTE_ALPHABET[1]
    vocab[a], vocab[b] = vocab[b], vocab[a]


def _drop_a_merge(doc):
    doc["model"]["merges"] = doc["model"]["merges"][:-1]


def _give_a_merge_the_wrong_id(doc):
    vocab, (left, right) = doc["model"]["vocab"], doc["model"]["merges"][0]
    other = next(t for t, i in vocab.items() if i == 256 + 5)
    vocab[left + right], vocab[other] = vocab[other], vocab[left + right]


def _merge_a_missing_token(doc):
    doc["model"]["merges"][3] = ["Ġ", "Ġzzz"]


def _rename_a_token_outside_the_alphabet(doc):
    vocab = doc["model"]["vocab"]
    token = next(t for t, i in vocab.items() if i == vocab.__len__() - 1)
    vocab["\u20ac"] = vocab.pop(token)  # € is no byte's stand-in (printable ASCII is)


@pytest.mark.parametrize(("change", "message"), [
    (_swap_first_two_bytes, "the tokenizer is a BPE other than GPT-2's; Baby GPT reads characters, GPT-2's BPE and "
                            "a byte-level BPE whose first 256 ids are the bytes"),
    (_drop_a_merge, r"1 token\(s\) that no merge makes"),
    (_give_a_merge_the_wrong_id, "numbers its tokens in the order it learned them|id that another token has"),
    (_merge_a_missing_token, "which the vocabulary lacks"),
    (_rename_a_token_outside_the_alphabet, "not written in the byte alphabet"),
    (lambda d: d.update(normalizer={"type": "Lowercase"}), "a normalizer"),
    (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "cuts text before its BPE in a way"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=r"\w+"), "cuts text before its BPE"),
    (lambda d: d["model"].update(byte_fallback=True), "sets byte_fallback"),
    (lambda d: d["model"].update(continuing_subword_prefix="##"), "sets continuing_subword_prefix"),
    (lambda d: d["model"]["vocab"].update({"Ġthe": 0}), "two tokens one id"),
])
def test_a_tokenizer_json_that_is_not_exactly_such_a_bpe_is_refused_in_a_sentence(training_text, tmp_path, change,
                                                                                     message):
    bpe = BPETokenizer(train_bpe(training_text, 400, "gpt4"))
    _, _, folder = exported(tmp_path, training_text, bpe)
    store = RunStore(tmp_path / "back")
    with pytest.raises(BabyGPTError, match=message) as refused:
        import_hf(store, _edited(folder, tmp_path, "edited", change), LIMITS)
    assert str(refused.value).startswith("Refused: ") and not LEAKS.search(str(refused.value))
    assert store.list_runs() == [], "nothing refused leaves a run behind"


def test_a_bpe_with_more_tokens_than_the_model_has_rows_is_refused(training_text, tmp_path):
    bpe = BPETokenizer(train_bpe(training_text, 400, "gpt4"))
    _, _, folder = exported(tmp_path, training_text, bpe)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] -= 1
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(BabyGPTError, match="has no model.safetensors"):
        import_hf(RunStore(tmp_path / "back"), folder, LIMITS)
    from babygpt.text.tokenizer_files import tokenizer_from_json

    document = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    with pytest.raises(BabyGPTError, match=f"the BPE has {bpe.vocab_size} tokens and the model {bpe.vocab_size - 1}"):
        tokenizer_from_json(document, bpe.vocab_size - 1)


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=6),
                   st.sampled_from(["Ġ", "Ġt", "t", "he", "Ġthe", "ByteLevel", "Split", "Sequence", r"\p{N}{1,3}", 300]))
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                                            inner, max_size=3),
                          max_leaves=8)
BPE_PLACES = [("pre_tokenizer",), ("pre_tokenizer", "pretokenizers", 0, "pattern", "Regex"),
              ("pre_tokenizer", "pretokenizers", 1, "use_regex"), ("pre_tokenizer", "pretokenizers", 0),
              ("normalizer",), ("post_processor",), ("model", "merges"), ("model", "merges", 0),
              ("model", "merges", 5, 1), ("model", "vocab", "Ġ"), ("model", "vocab", "Ġt"), ("model", "vocab", "new"),
              ("model", "byte_fallback"), ("model", "ignore_merges"), ("model", "dropout"), ("added_tokens",)]


@pytest.fixture(scope="module")
def bpe_export(training_text, tmp_path_factory):
    bpe = BPETokenizer(train_bpe(training_text, 320, "gpt4"))
    store, run_id = recorded_run(training_text, bpe, store=RunStore(tmp_path_factory.mktemp("bpe-fuzz")))
    return export_hf(store, run_id, tmp_path_factory.mktemp("bpe-export") / "export")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(place=st.sampled_from(BPE_PLACES), value=JSON_VALUE)
def test_a_mutated_bpe_tokenizer_json_imports_or_is_refused_in_a_sentence(bpe_export, tmp_path_factory, place,
                                                                           value):
    """Whatever a BPE export's tokenizer.json is changed into, importing it ends in a run whose tokenizer encodes,
    or in a sentence naming no path of this server: never a traceback."""
    from tests.import_support import assert_sentence

    folder = tmp_path_factory.mktemp("case") / "export"
    shutil.copytree(bpe_export, folder)
    document = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    target = document
    try:
        for step in place[:-1]:
            target = target[step]
        target[place[-1]] = value
    except (KeyError, IndexError, TypeError):
        document[place[0]] = value
    (folder / "tokenizer.json").write_text(json.dumps(document), encoding="utf-8")
    store = RunStore(folder.parent / "store")
    try:
        info = import_hf(store, folder, LIMITS)
    except BabyGPTError as exc:
        assert_sentence(exc, folder.parent)
        return
    store.load(info.id).tokenizer.encode(MIXED)


def test_the_model_card_writes_a_persons_names_as_text(training_text):
    import dataclasses

    from babygpt.store.huggingface import model_card

    store, run_id = recorded_run(training_text, BPETokenizer(train_bpe(training_text, 300, "gpt4")))
    hostile = "![x](http://evil.example/p.png) <b>*bold*</b>"
    info = dataclasses.replace(store.get(run_id), name=hostile)
    document = {**info.config, "data": {**info.config["data"], "name": hostile, "source": hostile}}
    card = model_card(info, document, 50, 1.5)
    assert hostile not in card and "<b>" not in card
    assert "# \\!\\[x\\]" in card or "# !\\[x\\]" in card, card.splitlines()[6]
