"""The building blocks of the recipe schema that plug-ins extend (no TensorFlow here).

:mod:`umsrep.recipe` assembles the recipe from these; each plug-in — an encoder architecture, a head, a
strategy, a loss weighting, a learning-rate schedule — declares its own ``Settings`` class by subclassing the
base here, and the recipe section that names it (``kind`` / ``method``) is validated with that class
(:func:`umsrep.registry.settings_validator`). So a field exists exactly where it is used, and a field of another
architecture or method is refused with one line naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Dict, List, Literal, Optional

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    field_validator,
    model_serializer,
    model_validator,
)

from umsrep.registry import SCHEDULES, settings_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptimizerConfig(Strict):
    name: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd/rmsprop momentum")
    weight_decay: Optional[float] = Field(None, ge=0)


class ScheduleSettings(Strict):
    """Base of a learning-rate schedule's settings (``lr_schedule``); subclasses add their fields."""

    kind: str


class EarlyStoppingConfig(Strict):
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True
    monitor: Literal["loss", "metric"] = Field(
        "loss", description="what picks the best epoch and stops: the validation loss, or the validation metric "
                            "(segmentation: mean Dice per image; classification: MCC; several tasks: their mean, "
                            "weighted as the joint weights; the loss where a stage has no metric)")
    min_epochs: int = Field(0, ge=0, description="never stop before this epoch (a small, noisy validation split "
                                                 "can otherwise stop training in its first epochs)")


# fields every lr_schedule of older recipes repeated (kind: constant included), with their unused values
_LEGACY_SCHEDULE = {"factor": 0.5, "patience": 3, "min_lr": 1e-6}


def _default_schedule():
    return SCHEDULES.get("plateau").Settings()


class TrainConfig(Strict):
    """Training settings shared by the representation stage and every head."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    steps_per_epoch: Optional[int] = Field(None, ge=1, description="default: ceil(n_train / batch_size)")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: Annotated[SerializeAsAny[ScheduleSettings],
                           BeforeValidator(settings_validator(SCHEDULES, "plateau", _LEGACY_SCHEDULE))] = Field(
        default_factory=_default_schedule, description="learning-rate schedule by kind (umsrep/train/schedules/)")
    early_stopping: Optional[EarlyStoppingConfig] = Field(default_factory=EarlyStoppingConfig)


class NoiseSpec(Strict):
    kind: Literal["gaussian", "poisson", "speckle"]
    levels: List[float] = Field(min_length=1, description="gaussian/speckle: sigma; poisson: peak photon count")

    @field_validator("levels")
    @classmethod
    def _positive(cls, v):
        if any(x <= 0 for x in v):
            raise ValueError("noise levels must be > 0")
        return v


def default_noise():
    return [NoiseSpec(kind="gaussian", levels=[0.05, 0.1]), NoiseSpec(kind="poisson", levels=[30.0]),
            NoiseSpec(kind="speckle", levels=[0.2])]


class RepresentationSettings(TrainConfig):
    """Base of the ``representation`` section: what every representation has, built here or loaded.

    An encoder architecture subclasses :class:`EncoderSettings` (in ``umsrep/models/<architecture>/``) with
    ``kind: Literal["<its name>"]`` and the fields only it reads."""

    kind: str
    #: ``train: auto`` means this for the architecture (denoising | supervised | none)
    DEFAULT_TRAINING: ClassVar[str] = "none"

    trainable: Optional[bool] = Field(
        None, description="update the encoder while training the heads (default: frozen for the independent "
                          "strategy, updated for alternating/joint); true with independent needs a single task")
    allow_mismatch: bool = Field(False, description="load an encoder whose modality/preprocessing differ from the "
                                                    "recipe, with a warning instead of an error")
    train: Literal["auto", "denoising", "supervised", "none"] = Field(
        "auto", description="how the representation stage learns: denoising (noisy -> clean through a decoder), "
                            "supervised (with the head of `task`), none (random init; the strategy trains it). "
                            "auto: denoising for denoising_autoencoder, supervised for supervised, else none")
    dropout: float = Field(0.5, ge=0, lt=1, description="supervised training: the head's dropout")
    noise: List[NoiseSpec] = Field(default_factory=default_noise)
    task: Optional[str] = Field(None, description="supervised: the task trained with the encoder "
                                                  "(default: the classification task with most labels)")
    init_from: Optional[str] = Field(None, description="load a trained encoder (run dir or encoder folder) "
                                                       "instead of training one")
    extra_data: List[Dict[str, Any]] = Field(
        default_factory=list, description="more data sets the representation also trains on (each an override of "
                                          "the top-level `data`, like tasks.<t>.data; same image_size and channels): "
                                          "their train splits join the top-level data's, their val splits its val")
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig(name="rmsprop", learning_rate=1e-3))

    @property
    def source(self) -> Optional[str]:
        """Where a loaded encoder comes from (pretrained name/path or init_from); None if it is built here."""
        return self.init_from

    @property
    def training(self) -> str:
        """The representation stage: denoising | supervised | none (``train`` with ``auto`` resolved)."""
        return self.DEFAULT_TRAINING if self.train == "auto" else self.train


class EncoderSettings(RepresentationSettings):
    """Base of an encoder architecture built here: widths and kernel size (every architecture has them)."""

    #: ``filters`` when the recipe gives none
    DEFAULT_FILTERS: ClassVar[list] = []

    filters: Optional[List[int]] = Field(None, min_length=1, description="encoder widths (default: the "
                                                                         "architecture's, see docs/architectures.md)")
    kernel_size: int = Field(3, ge=1, le=15, description="encoder convolution kernel size (paper search: 3, 5, 7)")
    decoder: Literal["unet", "symmetric"] = Field(
        "unet", description="train: denoising — the denoising decoder: unet (skip connections from every level and the "
                            "image at full resolution; denoises at every noise level) or symmetric (the UMS-Rep "
                            "paper's skip-less decoder, which blurs: for reproducing the paper)")

    @model_validator(mode="before")
    @classmethod
    def _no_name(cls, v):
        if isinstance(v, dict) and v.get("name") is not None:
            raise ValueError("`name` is for kind: pretrained (use init_from to load a run's encoder)")
        return v

    @field_validator("filters")
    @classmethod
    def _filters(cls, v):
        if v is not None and any(f < 1 for f in v):
            raise ValueError("filters must be positive integers")
        return v


class HeadSettings(Strict):
    """Base of a head's settings (``tasks.<task>.head``); each head subclasses it with ``kind: Literal[...]``.

    A head chosen by ``kind: auto`` (:func:`umsrep.models.resolve_head`) is written back as ``kind: auto``."""

    kind: str
    _auto: bool = PrivateAttr(False)

    @model_serializer(mode="wrap")
    def _keep_auto(self, handler):
        out = handler(self)
        if self._auto and isinstance(out, dict):
            out["kind"] = "auto"
        return out


# Recipes written before the settings moved into each architecture repeated every field of every architecture
# (run directories' recipe.yaml). Such a field the chosen class does not have is dropped when it still has the value
# it had then by default; any other value is refused. Frozen: new fields never go here.
LEGACY_REPRESENTATION = {"name": None, "aspp": True, "aspp_rates": [1, 6, 12, 18], "filters": None, "kernel_size": 3,
                         "dilation": 2, "dilated_layers": [4, 5, 6], "pool_after": [1, 2, 3]}
LEGACY_HEAD = {"filters": None, "skips": False, "units": 128, "dropout": 0.5, "attention": True, "connection": True,
               "branch_level": 3, "aspp_rates": [6, 12, 18, 24]}


class WeightingSettings(Strict):
    """Base of a loss weighting's settings (``strategy.weighting``), keyed on ``method``."""

    method: str
    weights: Optional[Dict[str, float]] = Field(
        None, description="fixed: weight per task (default 1); other methods: initial weights")

    @field_validator("weights")
    @classmethod
    def _nonneg(cls, v):
        if v is not None and any(w < 0 for w in v.values()):
            raise ValueError("task weights must be >= 0")
        return v


class StrategySettings(Strict):
    """Base of the fields one fine-tuning strategy reads from the ``strategy`` section (beyond the training
    settings every strategy has); a strategy without fields of its own uses it as is."""
