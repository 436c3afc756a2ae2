"""Export a run as one zip, and import one back only after every file in it has been checked.

An imported zip is untrusted. It is read by the rules every import shares (``babygpt.store.safe_zip``): its
directory, names and sizes before anything is unpacked, bytes counted while unpacking. Its names must be exactly the
run files; config.json is read first (its parse priced: ``babygpt.store.untrusted``), and the weights and optimizer
state are held to the size that model implies; weights must load as safetensors matching the config, with every
value finite, and trainer.pt must be torch's stored records and load with ``weights_only`` (no pickled code ever
runs).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from babygpt.config import ModelConfig
from babygpt.errors import BabyGPTError, ImportRefused
from babygpt.model.gpt import build_model
from babygpt.model.sizing import ModelLimits, parameter_count
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
from babygpt.store.hf_import import import_hf_zip, is_hf_zip
from babygpt.store.quota import DiskQuota
from babygpt.store.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    STAGING_PREFIX,
    MetricRow,
    RunInfo,
    RunStore,
    build_config_document,
    parse_config_document,
    read_config,
)
from babygpt.store.safe_zip import Entry, Wanted, check_stored_zip, check_wanted, entries, open_zip, read_entry, unpack_entry
from babygpt.store.untrusted import JsonBudget, check_finite, check_number, import_slot, load_json, plain_name
from babygpt.text.measured import Baselines, ValidationText

RUN_FILE = "run.json"
ALLOWED = {CONFIG_FILE, WEIGHTS_FILE, TRAINER_FILE, METRICS_FILE, RUN_FILE}
REQUIRED = {CONFIG_FILE, WEIGHTS_FILE}
DEFAULT_MAX_UNPACKED = 1 << 30  # 1 GiB
# what each file costs to read, bounded before it is read: the config a few KB (a GPT-2 vocabulary's ids 350 KB),
# run.json a few hundred bytes, a metrics line about 120 bytes (a long run records a few thousand lines)
CONFIG_BUDGET = JsonBudget(1 << 20, 200_000, max_string=1 << 16)
RUN_BUDGET = JsonBudget(64 << 10, 2_000)
METRIC_LINE_BUDGET = JsonBudget(4 << 10, 64)
MAX_METRIC_ROWS = 100_000
MEMBER_CAPS = {CONFIG_FILE: CONFIG_BUDGET.max_bytes, RUN_FILE: RUN_BUDGET.max_bytes, METRICS_FILE: 16 << 20}
WEIGHTS_ALLOWANCE = 1 << 20  # the safetensors header
TRAINER_ALLOWANCE = 4 << 20  # torch's record headers and alignment, the step, the random states


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


def _imported_from(data: Any) -> str:
    """Where an imported run's weights were trained: a Hugging Face import exported and imported again keeps that,
    every other archive is a run trained on some other server ("archive"), never in this lesson."""
    from_hf = isinstance(data, dict) and data.get("imported_from") == "huggingface"
    return "huggingface" if from_hf else "archive"


def _data_section(data: Any) -> dict[str, Any]:
    """The corpus description of an imported run: known keys with plain values only."""
    if not isinstance(data, dict):
        return {}
    kept = {k: data[k] for k in ("name", "source", "sha256", "n_chars")
            if isinstance(data.get(k), (str, int)) and not isinstance(data.get(k), bool)}
    baselines = Baselines.from_config({"data": data})
    if baselines is not None:
        kept["baselines"] = baselines.to_dict()
    validation = ValidationText.from_config({"data": data})
    if validation is not None:
        kept["validation"] = validation.to_dict()
    return kept


# what a recorded value can be: a loss in nats (a byte-level model starts near 5.5), a learning rate, a speed, and
# seconds of training (a year is 3.2e7)
METRIC_BOUNDS = {"loss": (0.0, 1e4), "lr": (0.0, 1e3), "tokens_per_sec": (0.0, 1e12), "elapsed_s": (0.0, 1e9)}
# a step is a whole number that SQLite and a float both hold exactly; not the run's max_iters, which a resume
# with more steps raises after the first rows were written
MAX_STEP = 10**12


def _metric_row(data: dict[str, Any], what: str) -> MetricRow:
    """One metrics line, with the types and ranges the charts and the store rely on (a number or null for each
    value; the step a whole number from 0 to ``MAX_STEP``)."""
    row = MetricRow(**{k: data.get(k) for k in MetricRow.__dataclass_fields__})
    check_number(row.step, f"{what}: step", 0, MAX_STEP, whole=True)
    if row.split not in ("train", "train_eval", "val"):
        raise ImportRefused(f"Refused: {what} has an unknown split {str(row.split)[:20]!r}.")
    for name, (low, high) in METRIC_BOUNDS.items():
        value = getattr(row, name)
        if value is not None:
            check_number(value, f"{what}: {name}", low, high)
    return row


def _read_metrics(path: Path) -> list[MetricRow]:
    """Every line priced before it is parsed: the file's lines counted first, each line its own small budget."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw.count(b"\n") > MAX_METRIC_ROWS:
        raise ImportRefused(f"Refused: {METRICS_FILE} has more than {MAX_METRIC_ROWS:,} lines, more than a run "
                            "records.")
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        what = f"{METRICS_FILE} line {number}"
        data = load_json(line, what, METRIC_LINE_BUDGET)
        if not isinstance(data, dict):
            raise ImportRefused(f"Refused: {what} is damaged (a {type(data).__name__}, not an object).")
        rows.append(_metric_row(data, what))
    return rows


def _run_entries(zf: zipfile.ZipFile) -> dict[str, Entry]:
    """The archive's files by name: exactly the run's files, at the top, the required ones present."""
    found = {}
    for entry in entries(zf):
        if entry.path not in ALLOWED:
            shown = repr(entry.path[:60])
            raise ImportRefused(f"Refused: unexpected file {shown}; a run archive holds only "
                                f"{', '.join(sorted(ALLOWED))}.")
        found[entry.path] = entry
    missing = REQUIRED - set(found)
    if missing:
        raise ImportRefused(f"Refused: the archive is missing {', '.join(sorted(missing))}; it is not a complete run.")
    return found


def member_caps(config: ModelConfig) -> dict[str, int]:
    """The most each file of a run archive of this model can hold: the weights in float32 and the optimizer's two
    moments a parameter, with room for their headers; the small files their own caps."""
    params = parameter_count(config)
    return {**MEMBER_CAPS, WEIGHTS_FILE: 4 * params + WEIGHTS_ALLOWANCE, TRAINER_FILE: 8 * params + TRAINER_ALLOWANCE}


def _meta(staging: Path) -> dict[str, Any]:
    """run.json's name, status and text, each kept only when it has its type."""
    if not (staging / RUN_FILE).is_file():
        return {}
    meta = load_json((staging / RUN_FILE).read_bytes(), RUN_FILE, RUN_BUDGET)
    if not isinstance(meta, dict):
        raise ImportRefused(f"Refused: {RUN_FILE} must hold a JSON object.")
    return {k: v for k, v in meta.items() if k in ("name", "status", "data_name", "data_sha256") and isinstance(v, str)}


def import_run(store: RunStore, archive: str | Path, limits: ModelLimits, max_unpacked: int = DEFAULT_MAX_UNPACKED,
               owner: str | None = None, quota: DiskQuota | None = None) -> RunInfo:
    """Check everything, from the zip's directory to the weights' header, before a model is built or a run
    recorded: a crafted config cannot make this process allocate a model over ``limits`` (the server's, which
    its settings read: ``babygpt.server.settings.model_limits_from_env``). The zip is read by the rules every
    import shares (``babygpt.store.safe_zip``), in the store's one import slot."""
    archive = Path(archive)
    with import_slot(store.home), open_zip(archive, archive.name) as zf:
        found = _run_entries(zf)
        document = load_json(read_entry(zf, Wanted(found[CONFIG_FILE], CONFIG_BUDGET.max_bytes)), CONFIG_FILE,
                             CONFIG_BUDGET)
        model_config, train_config, tokenizer = parse_config_document(document)
        limits.check_import(model_config)  # training it again is checked when it is queued, at its batch
        caps = member_caps(model_config)
        wanted = [Wanted(entry, caps[name]) for name, entry in found.items() if name != CONFIG_FILE]
        unpacked = check_wanted(wanted, max_unpacked, archive.name)
        if quota is not None:
            quota.check(store, owner, unpacked, f"Importing {archive.name}")
        staging = Path(tempfile.mkdtemp(dir=store.home, prefix=STAGING_PREFIX))
        try:
            for want in wanted:
                unpack_entry(zf, want, staging / want.entry.name)
            return _record(store, staging, document, (model_config, train_config, tokenizer), archive.stem, owner)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _record(store: RunStore, staging: Path, document: dict[str, Any], parsed: tuple, fallback_name: str,
            owner: str | None) -> RunInfo:
    """Load what was unpacked as the run will be loaded, then record it; nothing is left of a failed one."""
    model_config, train_config, tokenizer = parsed
    # stored as parsed: the run's files never hold a field the code did not check
    data = {**_data_section(document.get("data")), "imported_from": _imported_from(document.get("data"))}
    document = build_config_document(model_config, train_config, tokenizer, data)
    check_weights_file(staging / WEIGHTS_FILE, expected_shapes(model_config),
                       tied=model_config.tie_weights and model_config.use_attention)
    model = build_model(model_config)
    load_weights(model, staging / WEIGHTS_FILE)
    check_finite(model.state_dict(), WEIGHTS_FILE)
    if (staging / TRAINER_FILE).is_file():
        check_stored_zip(staging / TRAINER_FILE, TRAINER_FILE)
        load_trainer_state(staging / TRAINER_FILE)
    metrics = _read_metrics(staging / METRICS_FILE)
    meta = _meta(staging)
    status = RunStatus(meta["status"]) if meta.get("status") in {s.value for s in ENDED} else RunStatus.DONE
    name = plain_name(meta.get("name") or "", plain_name(fallback_name, "imported run"))
    info = store.create_run(name, document, text_name=meta.get("data_name"),
                            data_sha256=meta.get("data_sha256"), status=status, owner=owner)
    try:
        folder = store.run_dir(info.id)
        for name in (WEIGHTS_FILE, TRAINER_FILE):
            if (staging / name).is_file():
                os.replace(staging / name, folder / name)
        store.log_metrics(info.id, metrics)
    except BaseException:
        store.delete(info.id)
        raise
    return store.get(info.id)


def import_zip(store: RunStore, archive: str | Path, limits: ModelLimits, owner: str | None = None,
               quota: DiskQuota | None = None) -> RunInfo:
    """A .zip from a person: a Hugging Face folder when its files' names say so (``is_hf_zip``), else a run
    archive; each refused by its own importer's sentence."""
    importer = import_hf_zip if is_hf_zip(archive) else import_run
    return importer(store, archive, limits=limits, owner=owner, quota=quota)
