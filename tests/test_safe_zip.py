"""One set of zip rules for both importers (``babygpt.store.safe_zip``): each hostile zip is refused with the same
sentence by the Baby GPT archive import and the Hugging Face zip import, before anything is unpacked; what an
import does not read is never unpacked; copying stops at the declared size; a full disk is a sentence."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

import pytest

from babygpt.errors import DISK_FULL_MESSAGE, BabyGPTError, DiskFull
from babygpt.store import hf_import, safe_zip
from babygpt.store.archive import import_run, import_zip
from babygpt.store.checkpoints import WEIGHTS_FILE
from babygpt.store.hf_import import import_hf_zip
from babygpt.store.runs import RunStore
from babygpt.store.safe_zip import Entry, Wanted, open_zip, unpack_entry
from tests.helpers import LIMITS
from tests.import_support import assert_sentence, entry_name, good_zips, make_zip, patch_entry, recorded_run

IMPORTERS = {"archive": import_run, "hf": import_hf_zip}


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    store, run_id = recorded_run(store=RunStore(tmp_path_factory.mktemp("source")))
    return good_zips(store, run_id)


def only_the_config_is_read(monkeypatch) -> None:
    """From here on, unpacking anything but config.json (which every import reads first, bounded) fails the test."""
    real = safe_zip._copy

    def copy(zf, want, write):
        assert want.entry.name == "config.json", f"{want.entry.path} was unpacked for a refused zip"
        return real(zf, want, write)
    monkeypatch.setattr(safe_zip, "_copy", copy)


def refused(kind: str, raw: bytes, tmp_path: Path, match: str, monkeypatch, **options) -> str:
    """Import ``raw`` with the importer of ``kind``: refused with a sentence matching ``match``, nothing unpacked,
    no run recorded, no file left in the store."""
    path = tmp_path / f"{kind}.zip"
    path.write_bytes(raw)
    store = RunStore(tmp_path / "store")
    only_the_config_is_read(monkeypatch)
    with pytest.raises(BabyGPTError) as caught:
        IMPORTERS[kind](store, path, limits=LIMITS, **options)
    message = assert_sentence(caught.value, tmp_path)
    assert re.search(match, message), message
    assert store.list_runs() == []
    assert [p.name for p in store.home.iterdir() if p.name.startswith(".import-")] == []
    return message


def with_extra(files: dict[str, bytes], *extra: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    return make_zip([*files.items(), *extra])


HOSTILE_NAMES = [
    ("../evil.txt", "a path that escapes its folder"),
    ("model/../../evil.txt", "a path that escapes its folder"),
    ("/etc/evil", "a path that escapes its folder"),
    ("C:/Windows/evil", "a path that escapes its folder"),
    ("..\\evil.txt", "a path that escapes its folder"),
    ("model\\evil.txt", "backslashes"),
    ("evil\x01name", "control characters"),
    ("a" * 300, "300 characters long"),
]


@pytest.mark.parametrize("kind", IMPORTERS)
@pytest.mark.parametrize(("name", "match"), HOSTILE_NAMES, ids=["dotdot", "nested-dotdot", "absolute", "drive",
                                                                "backslash-dotdot", "backslash", "control", "long"])
def test_a_hostile_name_is_refused_the_same_by_both_importers(zips, kind, name, match, tmp_path, monkeypatch):
    refused(kind, with_extra(zips[kind], (name, b"x")), tmp_path, match, monkeypatch)
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("kind", IMPORTERS)
def test_links_and_duplicates_are_refused(zips, kind, tmp_path, monkeypatch):
    link = zipfile.ZipInfo(entry_name(zips[kind], "config.json").replace("config.json", "pointer"))
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    refused(kind, with_extra(zips[kind], (link, b"/etc/passwd")), tmp_path, "is a symbolic link", monkeypatch)
    again = entry_name(zips[kind], WEIGHTS_FILE)
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = with_extra(zips[kind], (again, zips[kind][again]))
    refused(kind, twice, tmp_path, "appears twice in the archive", monkeypatch)


@pytest.mark.parametrize("kind", IMPORTERS)
@pytest.mark.parametrize(("fields", "match"), [
    ({"flags": 0x1}, "is encrypted; zip the folder again without a password"),
    ({"method": 12}, "compressed with bzip2"),
    ({"method": 14}, "compressed with LZMA"),
    ({"method": 9}, "compressed with Deflate64"),
    ({"method": 99}, "compressed with AES"),
], ids=["encrypted", "bzip2", "lzma", "deflate64", "aes"])
def test_how_the_weights_are_packed_is_checked_before_unpacking(zips, kind, fields, match, tmp_path, monkeypatch):
    raw = patch_entry(make_zip(zips[kind]), entry_name(zips[kind], WEIGHTS_FILE), **fields)
    refused(kind, raw, tmp_path, match, monkeypatch)


@pytest.mark.parametrize("kind", IMPORTERS)
def test_an_entry_that_lies_about_its_size_is_refused_while_copying(zips, kind, tmp_path):
    """The directory says 100 bytes; the data holds the whole file: copying stops at 100 and the entry is refused
    (its checksum is the whole file's). Declaring more than it holds is refused too."""
    name = entry_name(zips[kind], WEIGHTS_FILE)
    for size in (100, len(zips[kind][name]) + 1000):
        path = tmp_path / f"{kind}-{size}.zip"
        path.write_bytes(patch_entry(make_zip(zips[kind]), name, size=size))
        with pytest.raises(BabyGPTError) as caught:
            IMPORTERS[kind](RunStore(tmp_path / "store"), path, limits=LIMITS)
        assert "corrupted or truncated" in assert_sentence(caught.value, tmp_path)


def test_copying_counts_the_bytes_whatever_the_header_says(zips, tmp_path):
    """Below the importers: an entry copied under a cap smaller than its data stops at the cap."""
    name = entry_name(zips["hf"], WEIGHTS_FILE)
    path = tmp_path / "lying.zip"
    path.write_bytes(patch_entry(make_zip(zips["hf"]), name, size=100))
    written = []
    with open_zip(path, "lying.zip") as zf:
        entry = Entry(zf.getinfo(name))
        with pytest.raises(BabyGPTError, match="corrupted or truncated"):
            safe_zip._copy(zf, Wanted(entry, 100), written.append)
    assert sum(len(chunk) for chunk in written) <= 100


@pytest.mark.parametrize("kind", IMPORTERS)
def test_a_damaged_entry_is_refused(zips, kind, tmp_path):
    raw = bytearray(make_zip(zips[kind]))
    name = entry_name(zips[kind], WEIGHTS_FILE).encode()
    start = raw.find(name) + len(name) + 200  # the first mention is the local header, its data right after
    raw[start:start + 64] = bytes(64)  # zeros over the compressed data
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(BabyGPTError) as caught:
        IMPORTERS[kind](RunStore(tmp_path / "store"), path, limits=LIMITS)
    assert "corrupted" in assert_sentence(caught.value, tmp_path)


@pytest.mark.parametrize("kind", IMPORTERS)
def test_the_zips_directory_is_bounded_before_it_is_read(zips, kind, tmp_path, monkeypatch):
    """A 2,000-entry zip is refused from its end record: Python's zipfile never builds an object per entry."""
    raw = make_zip([*zips[kind].items(), *[(f"pad{i}", b"") for i in range(2000)]])
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the directory was read"))
    refused(kind, raw, tmp_path, "lists 2,00\\d entries", monkeypatch)


@pytest.mark.parametrize("kind", IMPORTERS)
def test_what_is_not_a_zip_is_refused(kind, tmp_path, monkeypatch):
    refused(kind, b"this is not a zip" * 10, tmp_path, "is not a readable zip file", monkeypatch)
    refused(kind, b"PK\x05\x06" + bytes(10), tmp_path, "is not a readable zip file", monkeypatch)


@pytest.mark.parametrize("kind", IMPORTERS)
def test_the_total_is_bounded(zips, kind, tmp_path, monkeypatch):
    refused(kind, make_zip(zips[kind]), tmp_path, "unpacks to more than 1000 bytes \\(possible zip bomb\\)",
            monkeypatch, max_unpacked=1000)


def zeros_entry(zf: zipfile.ZipFile, name: str, size: int) -> None:
    """A deflated entry of ``size`` zero bytes, written in chunks (a 200 MB entry takes 200 KB in the zip)."""
    with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as target:
        for _ in range(size // (1 << 20)):
            target.write(bytes(1 << 20))


def test_files_the_import_does_not_read_are_never_unpacked(zips, tmp_path, monkeypatch):
    """A model card of 200 MB, a second copy of the weights in another folder, a pickle: skipped, never
    unpacked (a zip of a few hundred KB cannot fill the disk); the model imports."""
    path = tmp_path / "padded.zip"
    folder = entry_name(zips["hf"], "config.json").rsplit("/", 1)[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in zips["hf"].items():
            if not name.endswith("README.md"):
                zf.writestr(name, data)
        for name in (f"{folder}/README.md", f"{folder}/pytorch_model.bin", f"{folder}/copy/{WEIGHTS_FILE}"):
            zip_info = zipfile.ZipInfo(name)
            zip_info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(zip_info, "w", force_zip64=True) as target:
                for _ in range(200 if name.endswith("README.md") else 4):
                    target.write(bytes(1 << 20))
    assert path.stat().st_size < 2 << 20
    unpacked = []
    real = hf_import.unpack_entry
    monkeypatch.setattr(hf_import, "unpack_entry", lambda zf, want, target: (unpacked.append(want.entry.path),
                                                                             real(zf, want, target)))
    store = RunStore(tmp_path / "store")
    info = import_zip(store, path, LIMITS)
    assert store.load(info.id).model_config.vocab_size > 0
    assert sorted(name.rsplit("/", 1)[-1] for name in unpacked) == ["config.json", WEIGHTS_FILE, "tokenizer.json"]


def test_a_zip_with_two_model_folders_is_refused(zips, tmp_path, monkeypatch):
    twice = {**zips["hf"], **{"second/" + k.rsplit("/", 1)[-1]: v for k, v in zips["hf"].items()}}
    refused("hf", make_zip(twice), tmp_path, "holds 2 config.json files", monkeypatch)


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json"])
def test_each_file_is_held_to_its_roles_cap_before_it_is_unpacked(zips, name, tmp_path, monkeypatch):
    """A tokenizer of 7 MB (GPT-2's is 3.6 MB) or a config of 100 KB (GPT-2's is 1 KB): refused from the size the
    zip declares, with the cap named."""
    files = dict(zips["hf"])
    files[entry_name(files, name)] = b" " * ((7 << 20) if name == "tokenizer.json" else (100 << 10))
    message = refused("hf", make_zip(files), tmp_path, f"{name} is .*, more than such a file can need here",
                      monkeypatch)
    assert ("6.0 MB" if name == "tokenizer.json" else "64 KB") in message


def test_a_full_disk_while_unpacking_is_a_sentence(zips, tmp_path, monkeypatch):
    """/dev/full refuses every write with ENOSPC, as a full disk does: the import says so, naming no path."""
    path = tmp_path / "model.zip"
    path.write_bytes(make_zip(zips["hf"]))
    monkeypatch.setattr(hf_import, "unpack_entry", lambda zf, want, target: unpack_entry(zf, want, Path("/dev/full")))
    store = RunStore(tmp_path / "store")
    with pytest.raises(DiskFull) as caught:
        import_hf_zip(store, path, LIMITS)
    assert assert_sentence(caught.value, tmp_path) == DISK_FULL_MESSAGE
    assert store.list_runs() == []
