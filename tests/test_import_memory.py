"""What an import may cost the shared server: hostile tokenizer files are priced before they are parsed, their peak
memory measured; one import runs at a time; a model is checked for the memory of looking inside it, and a fine-tune
for the memory of training at its batch.

The figures, measured on this project's machine (tracemalloc's peak of Python allocations during the whole import;
the process's peak resident memory over what it held before):

* the tokenizer.json of the issue, 54 MB of empty lists zipped to about 55 KB (which took the server 1 GB before):
  refused from the size its zip entry declares, under 1 MB; the same entry declaring 1 MB: refused while copying,
  at 2 MB;
* the most a tokenizer.json within its budget costs (200,000 vocabulary entries, 3.6 MB): about 42 MB at its peak,
  held here to ``WORST_PARSE_MB``; GPT-2's own tokenizer.json (3.6 MB, 260,000 values) imports at about 65 MB.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import zipfile

import pytest

from babygpt.errors import BabyGPTError
from babygpt.store.hf_import import import_hf_zip
from babygpt.store.runs import RunStore
from babygpt.store.untrusted import BUSY_MESSAGE, ImportBusy, import_slot
from tests.conftest import ROOT
from tests.helpers import LIMITS
from tests.import_support import entry_name, good_zips, make_zip, patch_entry, recorded_run

HOSTILE_MB = 8  # the 54 KB tokenizer: refused before it is parsed
WORST_PARSE_MB = 64  # any tokenizer.json its budget lets the parser read
RSS_RISE_MB = 32  # the 54 KB tokenizer, in the process's resident memory

MEASURE = """
import json, re, sys, tracemalloc
from pathlib import Path
from babygpt.errors import BabyGPTError
from babygpt.store.hf_import import import_hf_zip
from babygpt.store.runs import RunStore
from tests.helpers import LIMITS

def status_mb(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

results = {}
for name, path in json.loads(sys.argv[1]).items():
    store = RunStore(path + ".home")
    before = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the kernel's high-water mark starts again from here
    tracemalloc.start()
    try:
        import_hf_zip(store, path, LIMITS)
        outcome = "accepted"
    except BabyGPTError as exc:
        outcome = str(exc)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    results[name] = {"peak_mb": peak / 2**20, "rss_rise_mb": status_mb("VmHWM") - before, "outcome": outcome}
print(json.dumps(results))
"""


def hostile_tokenizers() -> dict[str, bytes]:
    head = b'{"model": {"type": "BPE", "vocab": {}, "merges": ['
    return {
        "issue-54KB": head + b"[]," * (18 << 20) + b"[]]}}",  # 54 MB of empty lists: a billion bytes of lists
        "many-values": head + b"[]," * 2_000_000 + b"[]]}}",  # 6 MB, under the size cap, over the value count
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "long-string": json.dumps({"model": {"type": "BPE", "vocab": {"x" * 100_000: 0}}}).encode(),
        "largest-vocab": json.dumps({"model": {"type": "WordLevel",
                                               "vocab": {f"token{i}": i for i in range(199_000)}}}).encode(),
    }


def measure(paths: dict[str, str]) -> dict[str, dict]:
    """Each import in one fresh process: its peaks are its own, whatever this test process holds."""
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(paths)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory) -> dict[str, bytes]:
    store, run_id = recorded_run(store=RunStore(tmp_path_factory.mktemp("source")))
    return good_zips(store, run_id)["hf"]


def test_hostile_tokenizers_are_refused_before_they_cost_memory(hf_files, tmp_path):
    name = entry_name(hf_files, "tokenizer.json")
    paths = {}
    for case, body in hostile_tokenizers().items():
        raw = make_zip({**hf_files, name: body})
        if case == "issue-54KB":
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                assert zf.getinfo(name).compress_size < 80_000, "the issue's tokenizer is some 55 KB zipped"
            lying = patch_entry(raw, name, size=1 << 20)  # the same entry, declaring 1 MB
            (tmp_path / "issue-lying.zip").write_bytes(lying)
            paths["issue-lying"] = str(tmp_path / "issue-lying.zip")
        (tmp_path / f"{case}.zip").write_bytes(raw)
        paths[case] = str(tmp_path / f"{case}.zip")
    results = measure(paths)
    print(json.dumps(results, indent=1))
    expected = {"issue-54KB": "tokenizer.json is 54.0 MB, more than such a file can need here (6.0 MB)",
                "issue-lying": "tokenizer.json is corrupted or truncated",
                "many-values": "holds more than 400,000 values",
                "deep": "nests more than 16 levels deep",
                "long-string": "holds a string longer than 4,096 characters",
                "largest-vocab": "a word-level tokenizer opens here only as characters"}
    for case, words in expected.items():
        assert words in results[case]["outcome"], (case, results[case])
    for case in ("issue-54KB", "issue-lying"):
        assert results[case]["peak_mb"] < HOSTILE_MB, results[case]
        assert results[case]["rss_rise_mb"] < RSS_RISE_MB, results[case]
    for case, result in results.items():
        assert result["peak_mb"] < WORST_PARSE_MB, (case, result)


def test_one_import_at_a_time(hf_files, tmp_path):
    """While one import holds the store's slot, every other is told to try again, at once; then one goes through."""
    path = tmp_path / "model.zip"
    path.write_bytes(make_zip(hf_files))
    store = RunStore(tmp_path / "store")
    holding, release = threading.Event(), threading.Event()

    def first_import() -> None:
        with import_slot(store.home):
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=first_import)
    holder.start()
    assert holding.wait(60)
    refusals = []

    def another() -> None:
        try:
            import_hf_zip(store, path, limits=LIMITS)
        except BabyGPTError as exc:
            refusals.append(exc)

    others = [threading.Thread(target=another) for _ in range(3)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(60)
    release.set()
    holder.join(60)
    assert len(refusals) == 3 and all(isinstance(e, ImportBusy) and str(e) == BUSY_MESSAGE for e in refusals)
    assert "try again in a moment" in BUSY_MESSAGE
    assert store.list_runs() == []
    another()
    assert len(store.list_runs()) == 1, "the slot is free again once the first import ends"
