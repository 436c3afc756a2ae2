"""One set of rules for every zip a person hands the server: a Baby GPT run archive and a zipped Hugging Face folder
are read through the same checks, so the two importers can never differ in what they let through.

Before a byte is unpacked:

* the zip's directory is bounded (``MAX_ENTRIES`` entries, ``MAX_DIRECTORY_BYTES``), read from its end record before
  Python's ``zipfile`` builds an object for every entry (a 50 MB upload can list a million empty entries);
* every entry's name is a plain relative path: no absolute path or drive, no ``..``, no backslash, no control
  character, at most ``MAX_NAME_CHARS`` characters; no entry is a symbolic link; no path appears twice;
* the importer picks the entries it needs (``Wanted``) and gives each a limit by its role (a config file is small,
  the weights are the size their config implies); every other entry is skipped and never unpacked. A wanted entry
  must be stored or deflated (what zip tools write) and not encrypted, and the sizes the wanted entries declare are
  held to their limits and to a total.

While unpacking, the bytes are counted and copying stops at the declared size, whatever the entry's header says:
an entry whose data does not match what it declares (longer, shorter, or not its checksum) is refused as damaged,
and a full disk is ``DiskFull``'s sentence.
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babygpt.errors import BabyGPTError, ImportRefused, full_disk_as_sentence
from babygpt.store.untrusted import format_size

MAX_ENTRIES = 1000  # a run archive holds 5 files, a Hugging Face folder about 10
MAX_DIRECTORY_BYTES = 1 << 20
MAX_NAME_CHARS = 255  # what a file name may be on the usual file systems
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64", 99: "AES"}
CHUNK = 1 << 20
_END = struct.Struct("<4s4H2LH")  # the end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")


@dataclass(frozen=True)
class Entry:
    """A file in a zip, its name checked."""

    info: zipfile.ZipInfo

    @property
    def path(self) -> str:
        return self.info.filename

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def size(self) -> int:
        """What the entry declares it unpacks to; never trusted while copying."""
        return self.info.file_size


@dataclass(frozen=True)
class Wanted:
    """An entry an importer will unpack, and the most such a file may hold (its role's limit)."""

    entry: Entry
    cap: int


def _refuse(message: str) -> ImportRefused:
    return ImportRefused(f"Refused: {message}")


def _not_a_zip(shown: str) -> ImportRefused:
    return _refuse(f"{shown} is not a readable zip file (it is damaged, or not a zip).")


def _directory_figures(path: Path, shown: str) -> tuple[int, int]:
    """How many entries the zip's directory lists and how many bytes it takes, from the end record (and the
    zip64 record it points to for a large zip), before anything else of the zip is read."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        tail_length = min(size, _END.size + 0xFFFF)  # the record, then a comment of at most 64 KB
        handle.seek(size - tail_length)
        tail = handle.read(tail_length)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END.size:
            raise _not_a_zip(shown)
        _, _, _, _, entries, directory, offset, _ = _END.unpack_from(tail, at)
        if entries != 0xFFFF and 0xFFFFFFFF not in (directory, offset):
            return entries, directory
        locator = at - _END64_LOCATOR.size  # zip64: the real figures are in a record of their own
        if locator < 0 or tail[locator:locator + 4] != b"PK\x06\x07":
            raise _not_a_zip(shown)
        record_offset = _END64_LOCATOR.unpack_from(tail, locator)[2]
        handle.seek(min(record_offset, size))
        record = handle.read(_END64.size)
    if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
        raise _not_a_zip(shown)
    figures = _END64.unpack(record)
    return figures[7], figures[8]


def open_zip(path: str | Path, shown: str) -> zipfile.ZipFile:
    """The zip at ``path``, its directory bounded first. ``shown``: the name the person knows the file by (their
    upload's name), the only name a refusal uses."""
    path = Path(path)
    try:
        entries, directory = _directory_figures(path, shown)
        if entries > MAX_ENTRIES:
            raise _refuse(f"{shown} lists {entries:,} entries; a run or a model folder holds a few (at most "
                          f"{MAX_ENTRIES:,} are read).")
        if directory > MAX_DIRECTORY_BYTES:
            raise _refuse(f"{shown}'s list of entries takes {format_size(directory)}; a run or a model folder's takes "
                          "a few KB.")
        zf = zipfile.ZipFile(path)
    except BabyGPTError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error, NotImplementedError):
        raise _not_a_zip(shown) from None
    if len(zf.infolist()) > MAX_ENTRIES:  # a directory that is not where its end record says
        zf.close()
        raise _not_a_zip(shown)
    return zf


def _name_problem(name: str) -> str | None:
    """Why an entry's name cannot be a file inside one folder, or None."""
    path = name.replace("\\", "/")  # a Windows tool's separator, read as one: "..\\x" escapes as "../x" does
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or ".." in path.split("/"):
        return "a path that escapes its folder"
    if "\\" in name:
        return "a name with backslashes (a Windows path, which zip names never hold)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a name with control characters"
    if len(name) > MAX_NAME_CHARS:
        return f"a name {len(name):,} characters long (at most {MAX_NAME_CHARS})"
    return None


def entries(zf: zipfile.ZipFile) -> list[Entry]:
    """Every file in the zip (folders skipped), each name checked, none a link, none twice."""
    found: list[Entry] = []
    seen: set[str] = set()
    for info in zf.infolist():
        shown = repr(info.filename[:60] + ("…" if len(info.filename) > 60 else ""))
        problem = _name_problem(info.filename)
        if problem:
            raise _refuse(f"the archive contains {problem} ({shown}).")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(f"{shown} is a symbolic link; a run or a model folder holds files only.")
        if info.is_dir():
            continue
        if info.filename in seen:
            raise _refuse(f"{shown} appears twice in the archive; which one is meant cannot be known.")
        seen.add(info.filename)
        found.append(Entry(info))
    return found


def _check_entry(want: Wanted) -> None:
    """A wanted entry is packed as zip tools pack (stored or deflated, no password) and declares no more than its
    role's cap."""
    info = want.entry.info
    if info.flag_bits & 0x1:
        raise _refuse(f"{want.entry.name} is encrypted; zip the folder again without a password.")
    if info.compress_type not in METHODS:
        method = METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise _refuse(f"{want.entry.name} is compressed with {method}; zip the folder again with the usual "
                      "compression (deflate), as every zip tool does by default.")
    if want.entry.size > want.cap:
        raise _refuse(f"{want.entry.name} is {format_size(want.entry.size)}, more than such a file can need here "
                      f"({format_size(want.cap)}).")


def check_wanted(wanted: list[Wanted], max_total: int, shown: str) -> int:
    """Hold each wanted entry to its limit and how it is packed, and all of them to ``max_total``, from the zip's
    directory alone; returns what they declare they unpack to."""
    total = 0
    for want in wanted:
        _check_entry(want)
        total += want.entry.size
        if total > max_total:
            raise _refuse(f"{shown} unpacks to more than {format_size(max_total)} (possible zip bomb).")
    return total


def _copy(zf: zipfile.ZipFile, want: Wanted, write: Callable[[bytes], object]) -> None:
    """Copy the entry's bytes, counted: at most its declared size and its cap, and exactly its declared size."""
    _check_entry(want)
    entry, limit = want.entry, min(want.entry.size, want.cap)
    copied = 0
    try:
        with full_disk_as_sentence(), zf.open(entry.info) as source:
            while chunk := source.read(min(CHUNK, limit + 1 - copied)):
                copied += len(chunk)
                if copied > limit:
                    raise _refuse(f"{entry.name} unpacks to more than it declares (possible zip bomb).")
                write(chunk)
    except BabyGPTError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError):
        raise _refuse(f"{entry.name} is corrupted or truncated in the zip; zip the folder again.") from None
    if copied != entry.size:
        raise _refuse(f"{entry.name} is corrupted or truncated in the zip (it holds less than it declares).")


def read_entry(zf: zipfile.ZipFile, want: Wanted) -> bytes:
    """A small wanted entry's bytes (a config file), counted as they are unpacked."""
    parts: list[bytes] = []
    _copy(zf, want, parts.append)
    return b"".join(parts)


def unpack_entry(zf: zipfile.ZipFile, want: Wanted, target: Path) -> None:
    """Unpack a wanted entry to ``target`` (a name the importer chose, never the entry's path)."""
    with full_disk_as_sentence(), open(target, "wb") as handle:
        _copy(zf, want, handle.write)


def check_stored_zip(path: Path, shown: str) -> None:
    """A file that must be torch's own format (``torch.save``: a zip of records stored as they are): none compressed,
    none declaring more than the file holds, so loading it allocates no more than the file's size. torch's older
    pickle format is refused too, since it declares its tensors' sizes before they are read."""
    refused = ImportRefused(f"{shown} was refused: it is not in the format torch saves (a zip of records stored as "
                            "they are).")
    try:
        zf = open_zip(path, shown)
    except BabyGPTError:
        raise refused from None
    with zf:
        size = path.stat().st_size
        total = 0
        for info in zf.infolist():
            total += info.file_size
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or total > size:
                raise refused
