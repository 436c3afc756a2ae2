"""Export a run as one zip, and import one back only after every file in it has been checked.

An imported zip is untrusted: names must be exactly the run files (no paths), sizes are capped
before anything is unpacked (zip bombs), weights must load as safetensors matching the config,
and trainer.pt must load with ``weights_only`` (no pickled code ever runs).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from babygpt.errors import BabyGPTError
from babygpt.lessons.baselines import Baselines
from babygpt.model.gpt import build_model
from babygpt.model.sizing import ModelLimits
from babygpt.status import ENDED, RunStatus
from babygpt.store.checkpoints import (
    TRAINER_FILE,
    WEIGHTS_FILE,
    check_weights_file,
    expected_shapes,
    load_trainer_state,
    load_weights,
)
from babygpt.store.corpora import portable_source
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    MetricRow,
    RunInfo,
    RunStore,
    build_config_document,
    parse_config_document,
    read_config,
)

RUN_FILE = "run.json"
ALLOWED = {CONFIG_FILE, WEIGHTS_FILE, TRAINER_FILE, METRICS_FILE, RUN_FILE}
REQUIRED = {CONFIG_FILE, WEIGHTS_FILE}
DEFAULT_MAX_UNPACKED = 1 << 30  # 1 GiB
# the small files have small caps of their own: a 1 GiB metrics file would be read into memory whole
MEMBER_CAPS = {CONFIG_FILE: 4 << 20, RUN_FILE: 64 << 10, METRICS_FILE: 64 << 20}


def export_run(store: RunStore, run_id: str, destination: str | Path) -> Path:
    info = store.get(run_id)
    folder = store.run_dir(info.id)
    destination = Path(destination)
    if not (folder / WEIGHTS_FILE).is_file():
        raise BabyGPTError(f"Run {info.id} has no weights yet; nothing to export.")
    document = read_config(folder)
    data = document.get("data", {})
    source = portable_source(data)  # the text's name: never a path of this server
    document["data"] = {**data, "source": source}
    meta = {"name": info.name, "created_at": info.created_at, "status": info.status,
            "data_name": source, "data_sha256": info.data_sha256, "id": info.id}
    metrics = "".join(json.dumps(m.__dict__) + "\n" for m in store.metrics(info.id))
    tmp = destination.with_name(f".{destination.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CONFIG_FILE, json.dumps(document, indent=2))
        for name in (WEIGHTS_FILE, TRAINER_FILE):
            if (folder / name).is_file():
                zf.write(folder / name, arcname=name)
        zf.writestr(RUN_FILE, json.dumps(meta, indent=2))
        zf.writestr(METRICS_FILE, metrics)
    os.replace(tmp, destination)
    return destination


def export_bytes(store: RunStore, run_id: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = export_run(store, run_id, Path(tmp) / "run.zip")
        return path.read_bytes()


def _check_members(zf: zipfile.ZipFile, max_unpacked: int) -> int:
    """Check every member's name and declared size; returns the total unpacked size."""
    names = []
    total = 0
    for member in zf.infolist():
        name = member.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
            raise BabyGPTError(f"Refused: the archive contains a path that escapes its folder ({name!r}).")
        if "/" in name or "\\" in name or member.is_dir():
            raise BabyGPTError(f"Refused: unexpected folder entry {name!r}; a run archive holds files only.")
        if name not in ALLOWED:
            raise BabyGPTError(f"Refused: unexpected file {name!r}; a run archive holds only {', '.join(sorted(ALLOWED))}.")
        if name in names:
            raise BabyGPTError(f"Refused: {name!r} appears twice in the archive.")
        names.append(name)
        cap = MEMBER_CAPS.get(name)
        if cap and member.file_size > cap:
            raise BabyGPTError(f"Refused: {name} is {member.file_size / 2**20:.1f} MiB, over its "
                               f"{cap / 2**20:g} MiB limit.")
        total += member.file_size
        if total > max_unpacked:
            raise BabyGPTError(
                f"Refused: the archive unpacks to more than {max_unpacked / 2**20:.0f} MiB (possible zip bomb)."
            )
    missing = REQUIRED - set(names)
    if missing:
        raise BabyGPTError(f"Refused: the archive is missing {', '.join(sorted(missing))}; it is not a complete run.")
    return total


def _extract(zf: zipfile.ZipFile, folder: Path, max_unpacked: int) -> None:
    """Copy each member with a hard byte cap, whatever sizes its headers claim."""
    budget = max_unpacked
    for member in zf.infolist():
        own = MEMBER_CAPS.get(member.filename, max_unpacked)
        with zf.open(member) as src, open(folder / member.filename, "wb") as dst:
            while chunk := src.read(1 << 20):
                budget -= len(chunk)
                own -= len(chunk)
                if budget < 0 or own < 0:
                    raise BabyGPTError("Refused: the archive unpacks to more than its declared size (zip bomb).")
                dst.write(chunk)


def _data_section(data: Any) -> dict[str, Any]:
    """The corpus description of an imported run: known keys with plain values only."""
    if not isinstance(data, dict):
        return {}
    kept = {k: data[k] for k in ("name", "source", "sha256", "n_chars")
            if isinstance(data.get(k), (str, int)) and not isinstance(data.get(k), bool)}
    baselines = Baselines.from_config({"data": data})
    if baselines is not None:
        kept["baselines"] = baselines.to_dict()
    return kept


def _metric_row(data: dict[str, Any]) -> MetricRow:
    """One metrics line, with the types the charts rely on (a number or null for each value)."""
    row = MetricRow(**{k: data.get(k) for k in MetricRow.__dataclass_fields__})
    number = (int, float)
    if not (isinstance(row.step, int) and not isinstance(row.step, bool) and row.step >= 0):
        raise TypeError(f"step must be a whole number, got {row.step!r}")
    if row.split not in ("train", "train_eval", "val"):
        raise TypeError(f"unknown split {row.split!r}")
    for name in ("loss", "lr", "tokens_per_sec", "elapsed_s"):
        value = getattr(row, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    return row


def _read_metrics(path: Path) -> list[MetricRow]:
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BabyGPTError(f"Refused: {METRICS_FILE} is not UTF-8 text ({exc}).") from exc
    for number, line in enumerate(lines, 1):
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise TypeError(f"a {type(data).__name__}, not an object")
            rows.append(_metric_row(data))
        except (json.JSONDecodeError, TypeError) as exc:
            raise BabyGPTError(f"Refused: {METRICS_FILE} line {number} is damaged ({exc}).") from exc
    return rows


def import_run(store: RunStore, archive: str | Path, limits: ModelLimits, max_unpacked: int = DEFAULT_MAX_UNPACKED,
               owner: str | None = None, quota: DiskQuota | None = None) -> RunInfo:
    """Check everything, from the zip's directory to the weights' header, before a model is built or a run
    recorded: a crafted config cannot make this process allocate a model over ``limits`` (the server's, which
    its settings read: ``babygpt.server.settings.model_limits_from_env``)."""
    archive = Path(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BabyGPTError(f"Refused: {archive.name} is not a readable zip file ({exc}).") from exc
    staging = Path(tempfile.mkdtemp(dir=store.home, prefix=".import-"))
    try:
        with zf:
            unpacked = _check_members(zf, max_unpacked)
            if quota is not None:
                quota.check(store, owner, unpacked, f"Importing {archive.name}")
            try:
                _extract(zf, staging, max_unpacked)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise BabyGPTError(f"Refused: the archive is corrupted ({exc}).") from exc
        document = read_config(staging)
        model_config, train_config, tokenizer = parse_config_document(document)
        limits.check(model_config, train_config.batch_size)
        # stored as parsed: the run's files never hold a field the code did not check
        document = build_config_document(model_config, train_config, tokenizer, _data_section(document.get("data")))
        check_weights_file(staging / WEIGHTS_FILE, expected_shapes(model_config),
                           tied=model_config.tie_weights and model_config.use_attention)
        load_weights(build_model(model_config), staging / WEIGHTS_FILE)
        if (staging / TRAINER_FILE).is_file():
            load_trainer_state(staging / TRAINER_FILE)
        metrics = _read_metrics(staging / METRICS_FILE)
        meta: dict[str, Any] = {}
        if (staging / RUN_FILE).is_file():
            try:
                meta = json.loads((staging / RUN_FILE).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BabyGPTError(f"Refused: {RUN_FILE} is not valid JSON ({exc}).") from exc
            if not isinstance(meta, dict):
                raise BabyGPTError(f"Refused: {RUN_FILE} must hold a JSON object.")
        status = RunStatus(meta["status"]) if meta.get("status") in ENDED else RunStatus.DONE
        info = store.create_run(str(meta.get("name") or archive.stem)[:120], document,
                                data_name=meta.get("data_name"), data_sha256=meta.get("data_sha256"), status=status,
                                owner=owner)
        folder = store.run_dir(info.id)
        for name in (WEIGHTS_FILE, TRAINER_FILE):
            if (staging / name).is_file():
                os.replace(staging / name, folder / name)
        store.log_metrics(info.id, metrics)
        return store.get(info.id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
