"""How much of the run store's disk one user may fill: their runs' folders and the texts they uploaded.

A class shares one disk; without a bound, one student's fifty exported-and-reimported runs or a stream of
50 MB uploads fills it for everyone. The command line has no owner and no quota: it is the user's own store.
"""

from __future__ import annotations

from dataclasses import dataclass

from babygpt.config import ModelConfig, TrainConfig
from babygpt.errors import BabyGPTError
from babygpt.model.sizing import parameter_count
from babygpt.store.runs import RunStore

USER_DISK_ENV = "BABYGPT_USER_DISK_MB"
DEFAULT_USER_DISK_MB = 2048
WEIGHT_BYTES_PER_PARAM = 4  # a run's weights are float32, whatever precision they arrived in
CHECKPOINT_BYTES_PER_PARAM = 12  # float32 weights (4) + AdamW's two moments (8) in trainer.pt


def checkpoint_bytes(config: ModelConfig) -> int:
    """What a run's checkpoint will take on disk, known before it trains."""
    return parameter_count(config) * CHECKPOINT_BYTES_PER_PARAM


def weights_bytes(config: ModelConfig) -> int:
    """What an imported model's weights will take as a run: float32, so a half-precision file takes twice its size."""
    return parameter_count(config) * WEIGHT_BYTES_PER_PARAM


def kept_bytes(model_config: ModelConfig, train_config: TrainConfig) -> int:
    """What a run's kept copies of its weights (``keep_checkpoints``) will take: float32 weights at each kept step."""
    return len(train_config.kept_steps()) * weights_bytes(model_config)


def run_bytes(model_config: ModelConfig, train_config: TrainConfig) -> int:
    """What a run will take on disk, known before it trains: its checkpoint and its kept copies."""
    return checkpoint_bytes(model_config) + kept_bytes(model_config, train_config)


def run_needs(train_config: TrainConfig, what: str = "This run") -> str:
    """How a refusal names what a run needs room for: its kept copies named, so the student sees why."""
    kept = len(train_config.kept_steps())
    return f"{what} (its checkpoint and {kept} kept cop{'y' if kept == 1 else 'ies'} of its weights)" if kept else what


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


@dataclass(frozen=True)
class DiskQuota:
    bytes_per_user: int

    def check(self, store: RunStore, owner: str | None, adding: int, what: str) -> None:
        """Refuse ``what`` when it would take ``owner`` over the quota (no owner: the command line, no quota)."""
        if owner is None:
            return
        used = store.disk_usage(owner)
        if used + adding > self.bytes_per_user:
            raise BabyGPTError(
                f"{what} needs about {format_bytes(adding)}, and your runs and uploads already use "
                f"{format_bytes(used)} of the {format_bytes(self.bytes_per_user)} each user may keep on this "
                f"server. Delete runs you no longer need on the Runs page (export them first "
                "to keep a copy)."
            )
