"""Runs: every trained model, compared; delete, export (Baby GPT or Hugging Face), import, fine-tune."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from babygpt.config import FINE_TUNE_LR, FINE_TUNE_STEPS, fine_tune_config
from babygpt.errors import BabyGPTError
from babygpt.figures.viz import runs_overlay_figure
from babygpt.lessons.baselines import BITS_PER_BYTE_SENTENCE
from babygpt.lessons.comparing import FORCED_SENTENCE, loss_scale
from babygpt.lessons.race import BITS_PER_BYTE, NATS, group_races, race_bands
from babygpt.model.gpt2_layout import gpt2_obstacle
from babygpt.model.sizing import largest_batch
from babygpt.orchestration.plan import plan_finetune
from babygpt.orchestration.race import race_entries
from babygpt.pace import SUMMARY_SPEED_CAPTION
from babygpt.plain_text import file_name_part, markdown_literal
from babygpt.server.users import check_can_manage
from babygpt.status import ACTIVE
from babygpt.store.archive import export_bytes
from babygpt.store.huggingface import export_hf_zip
from babygpt.store.importing import import_source
from babygpt.store.runs import RunInfo
from babygpt.store.untrusted import local_name
from ui import choices, identity, state
from ui.widgets import explain


def export_box(column, run_id: str) -> None:
    """Export as a Baby GPT archive or a transformers GPT-2 folder; either is built only when pressed."""
    kind = column.radio("Export as", ["Baby GPT", "Hugging Face"], horizontal=True, key="runs_export_kind",
                        help="Baby GPT: an archive any Baby GPT imports. Hugging Face: a transformers GPT-2 folder "
                             "(config.json, model.safetensors, tokenizer, model card) that opens with "
                             "AutoModelForCausalLM.from_pretrained.")
    if kind == "Baby GPT":
        column.download_button("Export .zip", data=lambda: export_bytes(state.store(), run_id),
                               file_name=f"{file_name_part(run_id)}.zip", mime="application/zip", key="runs_export")
        return
    obstacle = gpt2_obstacle(state.store().get(run_id).record.model)
    if obstacle:
        column.caption(f"Not as GPT-2: {obstacle}")
    else:
        column.download_button("Export .zip", data=lambda: export_hf_zip(state.store(), run_id),
                               file_name=f"{file_name_part(run_id)}-transformers.zip", mime="application/zip",
                               key="runs_export_hf")


def fine_tune_box(run_id: str) -> None:
    """Train this run's model further on the current corpus: a new run that starts from its weights."""
    corpus = choices.corpus()
    with st.expander(f"Fine-tune it on {markdown_literal(corpus.name)}"):
        st.caption("A new run starts from this run's weights and tokenizer and trains on the text chosen on the Data "
                   "page; the run itself stays as it is. The text must use only tokens the model knows.")
        model = state.store().get(run_id).record.model
        limits = state.scheduler().limits
        fits = largest_batch(model, limits.job_memory_bytes)
        f1, f2, f3 = st.columns(3)
        steps = f1.number_input("Steps", 10, 100_000, FINE_TUNE_STEPS, 10, key="finetune_steps")
        lr = f2.number_input("Learning rate", 1e-6, 1e-1, FINE_TUNE_LR, format="%.0e", key="finetune_lr",
                             help="Lower than training from scratch: the weights already know a lot.")
        batch = f3.number_input("Batch", 1, 512, max(1, min(8, fits)), 1, key=f"finetune_batch_{run_id}",
                                help=f"Sequences of {model.block_size:,} tokens (the model's own context) in a "
                                     f"step; memory grows with it. Up to {fits} fit the memory a job may use here.")
        if st.button("Start fine-tuning", key="finetune_start", type="primary"):
            try:
                limits.check_fine_tune(model, int(batch))  # training memory at the batch it will use, said first
                base = state.store().load(run_id)
                settings = fine_tune_config(int(steps), float(lr), int(batch), choices.val_fraction())
                plan = plan_finetune(base, corpus, settings)
                info = state.scheduler().submit(identity.user(), plan,
                                                name=f"fine-tune of {base.info.label} on {corpus.name}")
                choices.set_active_run(info.id)  # what Model & training follows, named so it is not the source
                st.success(f"{markdown_literal(info.label)} is queued and is now your active run: the Model & "
                           "training page follows it as it trains.")
            except BabyGPTError as exc:
                st.error(markdown_literal(exc))


def imported(key: str, do_import) -> None:
    """Run an import once per file or folder; say what it became, or why it was refused."""
    flags = state.page_flags()
    try:
        info = do_import()
        flags["imported"] = key
        flags["import_message"] = f"Imported as {markdown_literal(info.label)}."
        st.rerun()  # the table above shows it now, not after the next click
    except BabyGPTError as exc:  # the sentence names the user's file
        st.error(markdown_literal(exc))


def overlay_runs(picked: list[dict], all_rows: list[dict]) -> list[str]:
    """The runs whose curves the overlay draws: a single run itself, a race by its runs."""
    ids = []
    for row in picked:
        members = [r["id"] for r in all_rows if row.get("group_id") and r.get("group_id") == row["group_id"]]
        ids += members or [row["id"]]
    return ids


def where_text(where: str | None) -> str:
    """"local", or a Ray node by the start of its id (the full id is in the run's config.json)."""
    where = where or "local"
    return where[:12] if where.startswith("ray:") else where


def figure_text(value, spec: str) -> str:
    """A number in a table cell, or "–" for one a run does not have (an import has no curve, a run that never
    trained no speed): never "None" or "nan"."""
    return "–" if value is None or value != value else format(value, spec)


st.title("Runs")
explain("Comparing experiments",
        "Each training run is saved with its configuration, weights, optimizer state and loss curve. Comparing "
        "validation curves of runs that differ in one setting is how you learn what that setting does.")

store = state.store()
me = identity.user()
everyone = st.toggle("Show everyone's runs", key="runs_everyone",
                     help="Your runs are shown by default. Classmates' runs can be looked at and compared, "
                          "but only their owner (or the teacher) can stop or delete them.")
if state.page_flags().get("runs_message"):  # what the last action did, shown once after its rerun
    st.success(state.page_flags().pop("runs_message"))
all_rows = [r.row() for r in store.summaries() if everyone or r.owner == me]  # rows for the table
rows = group_races(all_rows)  # a ladder race is one row; its runs are listed below the chart
if not rows:
    st.info("No runs yet. Train one on **Model & training**, or import a run archive below."
            + ("" if everyone else " Switch on *Show everyone's runs* to see your classmates'."))
else:
    table = pd.DataFrame(rows)
    table["created"] = pd.to_datetime(table["created_at"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
    table["size"] = [r.get("size") or "–" for r in rows]  # babygpt.model.sizing.size_in_words, as the board
    name = identity.owner_names([r["owner"] for r in all_rows])  # the names the Class board shows
    table["owner"] = [name(r["owner"], r.get("check", False)) for r in rows]  # read from rows: None stays None
    table["where"] = [where_text(w) for w in table["where"]]
    for column, spec in (("best_val_loss", ".4f"), ("best_val_bpb", ".3f"), ("tokens_per_sec", ",.0f")):
        table[column] = [figure_text(r.get(column), spec) for r in rows]  # from the rows: a column turns None to nan
    shown = table[["label", "preset", "size", "tokenizer", "steps", "best_val_loss", "best_val_bpb", "tokens_per_sec",
                   "status", "owner", "where", "created", "id"]]
    selection = st.dataframe(
        shown, hide_index=True, on_select="rerun", selection_mode="multi-row", key="runs_table",
        column_config={"label": st.column_config.TextColumn("name", width="large"),
                       "best_val_loss": st.column_config.TextColumn("best val loss",
                                                                    help="nats per token, at its best evaluation"),
                       "best_val_bpb": st.column_config.TextColumn(
                           "best bits/byte", help="At its best evaluation. " + BITS_PER_BYTE_SENTENCE),
                       "tokens_per_sec": st.column_config.TextColumn("overall tokens/s", help=SUMMARY_SPEED_CAPTION),
                       "owner": st.column_config.TextColumn("owner", width="medium"),
                       "where": st.column_config.TextColumn(
                           "where", help="The machine it trained on: this server (local), or a node of the Ray "
                                         "cluster (the start of its node id, as Ray's dashboard shows it).")},
    )
    picked = [rows[i] for i in selection.selection.rows] or rows[:5]
    labels = {r["id"]: r["label"] for r in all_rows}
    t1, t2 = st.columns(2)
    log_y = t1.toggle("Log-scale", key="runs_log_y")
    configs = {run_id: store.get(run_id).config for run_id in overlay_runs(picked, all_rows)}
    scale = loss_scale(list(configs.values()))
    bpb_help = ("Loss per UTF-8 byte of the validation text instead of per token, so runs with different tokenizers "
                "compare fairly. " + BITS_PER_BYTE_SENTENCE)
    if scale.forced:  # the runs' tokenizers differ: only bits per byte compares them
        t2.toggle("Bits per byte", value=True, disabled=True, key="runs_bpb_forced", help=bpb_help)
    else:
        scale = loss_scale(list(configs.values()), asked=t2.toggle("Bits per byte", key="runs_bpb", help=bpb_help))
    curves, left_out = {}, []
    for row in picked:
        if row.get("group_id"):  # a race: each rung's mean over its seeds
            bands = race_bands(race_entries(store, row["group_id"]), BITS_PER_BYTE if scale.bits_per_byte else NATS)
            for preset, band in bands.items():
                curves[f"{row['label']}: {preset}"] = list(zip(band.steps, band.mean, strict=True))
            left_out += [] if bands else [row["label"]]
            continue
        val = [(m.step, m.loss) for m in store.metrics(row["id"]) if m.split == "val" and m.loss is not None]
        curve = scale.curve(configs[row["id"]], val)
        if curve is not None:
            curves[row["label"]] = curve
        elif val:  # a curve recorded before runs kept their validation text's size (an import has none to draw)
            left_out.append(row["label"])
    st.plotly_chart(runs_overlay_figure(curves, log_y=log_y, y_title=scale.axis), key="runs_overlay")
    if scale.bits_per_byte:
        st.caption((FORCED_SENTENCE + " " if scale.forced else "") + BITS_PER_BYTE_SENTENCE)
    if left_out:
        st.caption("Not drawn in bits per byte (recorded before runs kept the size of their validation text): "
                   + markdown_literal(", ".join(left_out)) + ".")
    st.caption("Select rows in the table to choose which curves to overlay (the five newest by default).")

    races = [r for r in rows if r.get("group_id")]
    for race in races:
        with st.expander(f"{markdown_literal(race['label'])}: its {race['runs']} runs"):
            members = [r for r in all_rows if r.get("group_id") == race["group_id"]]
            st.dataframe(pd.DataFrame(members)[["label", "preset", "steps", "best_val_loss", "status", "id"]],
                         hide_index=True, key=f"race_runs_{race['group_id']}",
                         column_config={"best_val_loss": st.column_config.NumberColumn("best val loss",
                                                                                        format="%.4f")})
            if st.button("Delete this race", key=f"race_delete_{race['group_id']}",
                         disabled=race["status"] in ACTIVE,
                         help="Deletes all of its runs (your own races only; stop a race first)."):
                try:  # every run or none: a refusal leaves the whole race
                    state.scheduler().delete_race(identity.actor(), race["group_id"])
                    st.rerun()
                except BabyGPTError as exc:
                    st.error(markdown_literal(exc))

    singles = [r["id"] for r in all_rows if not r.get("group_id")] or [r["id"] for r in all_rows]
    target = st.selectbox("Run", singles, key="runs_target", format_func=labels.get)
    c1, c2, c3 = st.columns(3)
    if c1.button("Make active", key="runs_activate", help="Use this run on the Attention and Generate pages."):
        choices.set_active_run(target)
        st.success(f"{markdown_literal(labels[target])} is now the active run.")
    flags = state.page_flags()
    if c2.button("Delete", key="runs_delete",
                 help="Removes the run's folder and metrics. Only your own runs; a training run is refused."):
        try:  # whose it is, before asking "are you sure?"
            check_can_manage(identity.actor(), store.get(target), "delete")
            flags["confirm_delete"] = target
        except BabyGPTError as exc:
            st.error(markdown_literal(exc))
    if flags.get("confirm_delete") == target:  # one more click, naming what goes, before anything is removed
        owner = next((r["owner"] for r in all_rows if r["id"] == target), None)
        whose = "" if owner == me else f" It belongs to {markdown_literal(name(owner, False) if owner else 'the command line')}."
        st.warning(f"Delete **{markdown_literal(labels[target])}**, its weights and its curves? This cannot be undone.{whose}")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="runs_delete_confirm", type="primary"):
            flags.pop("confirm_delete", None)
            try:
                state.scheduler().delete(identity.actor(), target)
                if choices.active_run_id() == target:
                    choices.set_active_run(None)
                flags["runs_message"] = f"Deleted {markdown_literal(labels[target])}."
                st.rerun()
            except BabyGPTError as exc:
                st.error(markdown_literal(exc))
        if no.button("Keep it", key="runs_delete_cancel"):
            flags.pop("confirm_delete", None)
            st.rerun()
    if store.has_weights(target):
        export_box(c3, target)
        fine_tune_box(target)

st.subheader("Import a run")
upload = st.file_uploader("A Baby GPT run archive, or a Hugging Face GPT-2 folder zipped (.zip)", type=["zip"],
                          key="runs_import", help="Hugging Face folders: GPT-2-shaped models (GPT-2, distilgpt2, a "
                          "Baby GPT export) with model.safetensors and their tokenizer; a pickle is never loaded.")
flags = state.page_flags()
if upload is not None and flags.get("imported") != upload.file_id:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / local_name(upload.name, "upload.zip")  # errors name the user's file

        def from_upload() -> RunInfo:
            path.write_bytes(upload.getvalue())
            return import_source(store, path, state.scheduler().limits, owner=me, quota=state.scheduler().quota)
        imported(upload.file_id, from_upload)
if identity.actor().admin:
    with st.expander("Import a Hugging Face folder from this server's disk (teacher)"):
        folder = st.text_input("Folder", key="runs_import_folder", placeholder="/media/usb/gpt2",
                               help="A GPT-2-shaped transformers folder on the machine that runs this server: "
                                    "config.json, model.safetensors and the tokenizer. Nothing is downloaded.")
        if st.button("Import the folder", key="runs_import_folder_go", disabled=not folder.strip()):
            imported(folder, lambda: import_source(store, folder.strip(), state.scheduler().limits, owner=me,
                                                   quota=state.scheduler().quota))
if flags.get("import_message"):
    st.success(flags.pop("import_message"))
