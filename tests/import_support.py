"""Builders for the import tests: a recorded run, its two kinds of zip, the zips rewritten entry by entry or byte by
byte (a crafted zip's headers say what its maker wants), and the check that a refusal is a sentence."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_model

from babygpt.errors import BabyGPTError
from babygpt.model.gpt import build_model
from babygpt.orchestration.runs import create_run
from babygpt.store.archive import export_bytes
from babygpt.store.checkpoints import WEIGHTS_FILE, atomic_write_with
from babygpt.store.huggingface import export_hf_zip
from babygpt.store.runs import MetricRow, RunStore
from tests.helpers import tiny_plan

TEXT = "\n".join(f"the cat sat on the mat {i % 7}. a dog ran to the log {i % 5}!" for i in range(300)) + "\n"
# what a sentence for a person never holds: a path of this server, or Python's own words for a crash
LEAKS = re.compile(r"/tmp/|/work/|/home/|/root/|/usr/|site-packages|Traceback|File \"|line \d+, in|Errno|"
                   r"0x[0-9a-f]{6,}")


def recorded_run(text: str = TEXT, tokenizer: str = "char", store: RunStore | None = None,
                 **model) -> tuple[RunStore, str]:
    """A run recorded with random weights (every bias and norm moved off its initial value, so a mapping that
    dropped or transposed one would show), as if it had trained."""
    store = store or RunStore()
    plan = tiny_plan(text, tokenizer=tokenizer, **{"block_size": 32, **model})
    info = create_run(store, plan, name="bridge", status="done")
    torch.manual_seed(7)
    net = build_model(plan.model_config)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    atomic_write_with(store.run_dir(info.id) / WEIGHTS_FILE, lambda tmp: save_model(net, tmp))
    store.log_metrics(info.id, [MetricRow(50, "val", 1.5, None, None, 1.0)])
    return store, info.id


def zip_files(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def make_zip(files: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]],
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return buffer.getvalue()


def good_zips(store: RunStore, run_id: str) -> dict[str, dict[str, bytes]]:
    """The run's two zips, as their files: a Baby GPT archive, and a Hugging Face folder (in one folder)."""
    return {"archive": zip_files(export_bytes(store, run_id)), "hf": zip_files(export_hf_zip(store, run_id))}


def entry_name(files: dict[str, bytes], name: str) -> str:
    """The path of the file called ``name`` in a zip's files (at the top, or in the folder)."""
    return next(path for path in files if path.rsplit("/", 1)[-1] == name)


def patch_entry(raw: bytes, name: str, **fields: int) -> bytes:
    """Rewrite an entry's headers (both its local header and its central directory record), as a crafted zip
    would have them: ``flags``, ``method``, ``size`` (what it declares it unpacks to), ``external`` (its attributes:
    a symbolic link's mode)."""
    data = bytearray(raw)
    encoded = name.encode()
    for signature, offsets in ((b"PK\x01\x02", {"flags": 8, "method": 10, "size": 24, "name": 46, "length": 28,
                                                "external": 38}),
                               (b"PK\x03\x04", {"flags": 6, "method": 8, "size": 22, "name": 30, "length": 26})):
        at = data.find(signature)
        while at >= 0:
            length = struct.unpack_from("<H", data, at + offsets["length"])[0]
            start = at + offsets["name"]
            if bytes(data[start:start + length]) == encoded:
                for field, value in fields.items():
                    if field in offsets:
                        fmt = "<I" if field in ("size", "external") else "<H"
                        struct.pack_into(fmt, data, at + offsets[field], value)
            at = data.find(signature, at + 4)
    return bytes(data)


def assert_sentence(exc: BaseException, *paths: Path) -> str:
    """A refusal a person can read: a BabyGPTError whose message names no path of this server."""
    assert isinstance(exc, BabyGPTError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert not LEAKS.search(message), message
    for path in paths:
        assert str(path) not in message, message
    assert message.strip() and len(message) < 600, message
    return message
