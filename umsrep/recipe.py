"""The recipe: one YAML file that describes a whole run, validated by one pydantic schema.

Everything that reads a recipe goes through :func:`load_recipe` (file) or :func:`parse_recipe` (dict), so
``${ENV}`` expansion, ``--set`` overrides and error formatting happen in exactly one place. Unknown keys are
rejected; every error is reported as one line naming the recipe file, the field path and what was expected.
"""

from __future__ import annotations

import builtins
import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from umsrep.errors import RecipeError
from umsrep.registry import ENCODERS, HEADS, STRATEGIES, settings_validator
from umsrep.settings import (  # noqa: F401
    LEGACY_HEAD,
    LEGACY_REPRESENTATION,
    EarlyStoppingConfig,
    EncoderSettings,
    HeadSettings,
    NoiseSpec,
    OptimizerConfig,
    RepresentationSettings,
    ScheduleSettings,
    Strict,
    TrainConfig,
    WeightingSettings,
)
from umsrep.transforms.config import AugmentConfig

# --------------------------------------------------------------------------------------------------- schema


class SplitConfig(Strict):
    test: Union[int, float] = Field(0.2, description="held out for testing: a fraction (0.2) or a count (20) of "
                                                     "images, of groups (patients) when group_by is set")
    val: Union[int, float] = Field(0.1, description="used for validation: a fraction of all images (groups) or a "
                                                    "count")
    folds: Optional[int] = Field(None, ge=2, description="k-fold cross-validation: each fold is the test split "
                                                         "once (overrides `test`); results as mean ± SD")
    fold: Optional[int] = Field(None, ge=0, description="k-fold: run only this fold (default: every fold)")
    train_fraction: float = Field(1.0, gt=0, le=1, description="keep this fraction of the train split (stratified; "
                                                               "val and test unchanged): labelled-data curves")
    seed: Optional[int] = Field(None, description="seed of the split (default: the recipe's seed); fix it to "
                                                  "train several seeds on one split")
    file: Optional[str] = Field(None, description="CSV with columns filename,split (train/val/test) giving every "
                                                  "image's split, e.g. a run's split.csv; replaces test/val/seed")

    @field_validator("test", "val", mode="before")
    @classmethod
    def _amount(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("expected a fraction in [0, 1) or a whole count")
        if isinstance(v, float) and not 0 <= v < 1:
            raise ValueError("a fraction must be in [0, 1) (write a whole number for a count)")
        if isinstance(v, int) and v < 0:
            raise ValueError("a count must be >= 0")
        return v

    @model_validator(mode="before")
    @classmethod
    def _old_fold_default(cls, v):
        # run directories written before k-fold runs existed say `fold: 0` without `folds`: that meant no k-fold
        if isinstance(v, dict) and v.get("folds") is None and v.get("fold") == 0:
            v = {k: x for k, x in v.items() if k != "fold"}
        return v

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.file is not None and (self.folds is not None or self.train_fraction < 1):
            raise ValueError("file gives the split; it cannot be combined with folds or train_fraction")
        if self.fold is not None and self.folds is None:
            raise ValueError("fold needs folds (the number of folds)")
        if self.folds is not None and self.fold is not None and self.fold >= self.folds:
            raise ValueError(f"fold must be < folds ({self.folds})")
        return self


class SyntheticConfig(Strict):
    kind: Literal["ultrasound", "doppler"] = Field(
        "ultrasound", description="ultrasound: breast-ultrasound-like B-mode (umsrep.data.synthetic); doppler: "
                                  "spectral Doppler echo, flows MV/MA/TR (umsrep.data.doppler, docs/doppler.md)")
    n: int = Field(240, ge=12)
    size: int = Field(64, ge=16, le=1024)
    seed: int = 0
    per_patient: int = Field(2, ge=1)
    low_quality: float = Field(0.3, ge=0, le=1, description="doppler only: fraction of each flow's images made "
                                                          "low quality (weak signal, clutter, clipping, aliasing)")


Normalization = Literal["none", "image_mean", "image_zscore", "dataset_zscore"]
# one model input and one training pipeline for all the data sets of a `data.pool`
# (resize too: the model records one rule, which predict and the measurements map outputs back with)
POOL_SHARED = {"image_size", "channels", "normalization", "lowpass_sigma", "resize", "augment"}
POOL_SPLIT_SHARED = {"folds", "fold"}   # one cross-validation for all pooled sets


class DataConfig(Strict):
    root: Optional[str] = Field(None, description="data folder; ${ENV} and ${ENV:-default} are expanded")
    synthetic: Optional[SyntheticConfig] = Field(
        None, description="generate an embedded synthetic set instead of reading root: kind ultrasound (B-mode, "
                          "into <run>/data) or doppler (spectral Doppler echo, into <run>/doppler_data)")
    images: str = "images"
    masks: Optional[str] = "masks"
    labels: Optional[str] = "labels.csv"
    filename_column: str = "filename"
    label_column: str = "label"
    group_by: Optional[str] = Field(None, description="labels-CSV column keeping a patient in one split")
    image_size: Tuple[int, int] = (256, 256)
    resize: Literal["stretch", "letterbox"] = Field(
        "stretch", description="how images meet image_size: stretch (each axis resized; the aspect ratio changes) or "
                               "letterbox (scaled to fit, aspect kept, centred, zero padding); every output (masks, "
                               "overlays, measurements) maps back to each image's own pixel grid either way")
    lowpass_sigma: Optional[float] = Field(None, gt=0, description="Gaussian low-pass of every image (the "
                                                                   "ultrasound preprocessing, σ = 2), in the model")
    channels: Literal[1, 3] = 1
    normalization: Normalization = "dataset_zscore"
    on_bad_file: Literal["error", "skip"] = "error"
    split: SplitConfig = Field(default_factory=SplitConfig)
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, description="training-split augmentation: a preset (none, light, strong) "
                                                   "and/or per-transform settings (umsrep.transforms)")
    pool: List[Dict[str, Any]] = Field(
        default_factory=list, description="other data sets pooled with this one: each entry overrides fields of "
                                          "this section (root, labels, split, ...), is read and split on its own "
                                          "(so its test images are those of its own recipe), and its train / val / "
                                          "test images join this set's; test metrics are also reported per data set")

    @field_validator("image_size", mode="before")
    @classmethod
    def _size(cls, v):
        if isinstance(v, int):
            v = (v, v)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) and 8 <= i <= 4096 for i in v):
            return tuple(v)
        raise ValueError("expected an integer or [height, width], each 8..4096")

    @model_validator(mode="after")
    def _root_or_synthetic(self):
        if self.root is None and self.synthetic is None:
            raise ValueError("give either `root` (a data folder) or `synthetic`")
        errors = []
        for i, entry in enumerate(self.pool):
            if "pool" in entry:
                errors.append((("pool", i, "pool"), "pools do not nest: list every data set in this section's pool"))
                continue
            fixed = sorted(set(entry) & POOL_SHARED)
            split = entry.get("split")
            folds = sorted(set(split) & POOL_SPLIT_SHARED) if isinstance(split, dict) else []
            if fixed or folds:
                where = ("pool", i, fixed[0]) if fixed else ("pool", i, "split", folds[0])
                errors.append((where, f"pooled data sets share this section's {'.'.join(map(str, where[2:]))} (one "
                                      "model input, one training pipeline, one cross-validation); set it once, "
                                      "outside `pool`"))
                continue
            try:
                self._pooled(entry)
            except ValidationError as e:  # named where it is: data.pool[i].<field>
                errors += [(("pool", i, *err["loc"]), _format_error({**err, "loc": ()})) for err in e.errors()]
        if errors:
            raise ValidationError.from_exception_data("data", [
                {"type": PydanticCustomError("pool", "{text}", {"text": text}), "loc": loc, "input": None}
                for loc, text in errors[:3]])
        return self

    def override(self, fields: Dict[str, Any]) -> "DataConfig":
        """This section with ``fields`` replaced: a task's own ``data``, a ``representation.extra_data`` entry, a
        ``pool`` entry. The pool is not inherited: an override names another data set (its own ``pool`` if any)."""
        return DataConfig(**{**self.model_dump(exclude={"pool"}), **fields})

    def _pooled(self, entry: Dict[str, Any]) -> "DataConfig":
        # a pooled set's `split` changes the section's split field by field (seed, train_fraction, file stay shared)
        if isinstance(entry.get("split"), dict):
            entry = {**entry, "split": {**self.split.model_dump(exclude_defaults=True), **entry["split"]}}
        return self.override(entry)

    @property
    def grouped_by(self) -> Optional[str]:
        """The column images are grouped by (patient, recording): ``group_by``, or with a pool the first pooled set's
        that has one (pooled group ids are ``<set>/<id>``, an ungrouped set's images each a group of their own)."""
        return self.group_by or next((e["group_by"] for e in self.pool if e.get("group_by")), None)

    def parts(self) -> List["DataConfig"]:
        """The data sets this section reads: itself (without its pool), then each pooled one."""
        return [self.override({}), *(self._pooled(e) for e in self.pool)] if self.pool else [self]


def _kind_field(registry, default, legacy, base):
    """A recipe section validated by the Settings class of the registry entry it names (``kind``/``method``)."""
    return Annotated[SerializeAsAny[base], BeforeValidator(settings_validator(registry, default, legacy))]


# representation: {kind: <an encoder registered by a umsrep/models/<architecture>/ package>, ...its settings}
RepresentationConfig = _kind_field(ENCODERS, "denoising_autoencoder", LEGACY_REPRESENTATION, RepresentationSettings)


def _default_representation():
    return ENCODERS.get("denoising_autoencoder").Settings()


LossName = Literal["auto", "dice_ce", "dice", "ce", "jaccard_ce", "jaccard", "tversky", "tversky_ce"]  # = LOSSES


class LossConfig(Strict):
    name: LossName = Field("auto", description="auto = dice_ce for segmentation, ce for classification")
    overlap_weight: float = Field(1.0, ge=0, description="weight of the Dice/Jaccard term (seeds: 20 Dice, 3 Jaccard)")
    ce_weight: float = Field(1.0, ge=0)
    smooth: float = Field(1.0, ge=0)
    alpha: float = Field(0.3, ge=0, description="tversky: weight of false positives (predicted, not labelled)")
    beta: float = Field(0.7, ge=0, description="tversky: weight of false negatives (labelled, missed)")


class CrfConfig(Strict):
    iterations: int = Field(5, ge=0)
    theta_alpha: float = Field(8.0, gt=0, description="appearance kernel: position std (pixels)")
    theta_beta: float = Field(0.1, gt=0, description="appearance kernel: intensity std (image in [0, 1])")
    theta_gamma: float = Field(3.0, gt=0, description="smoothness kernel: position std (pixels)")
    w_appearance: float = Field(5.0, ge=0)
    w_smoothness: float = Field(3.0, ge=0)
    max_side: int = Field(64, ge=8, description="mean field runs exactly on a grid with this longer side")


class PostprocessConfig(Strict):
    crf: Optional[CrfConfig] = Field(None, description="fully connected CRF on the predicted probabilities")
    min_size: int = Field(0, ge=0, description="remove connected components smaller than this (pixels)")
    opening_radius: int = Field(0, ge=0, description="morphological opening with a disc of this radius")


# tasks.<task>.head: {kind: auto | <a registered head>, ...its settings}
HeadConfig = _kind_field(HEADS, "auto", LEGACY_HEAD, HeadSettings)


def _default_head():
    return HEADS.get("auto").Settings()


class TaskConfig(TrainConfig):
    type: Literal["segmentation", "classification"]
    classes: List[str] = Field(min_length=1)
    mask_classes: Optional[Dict[str, List[int]]] = Field(
        None, description="segmentation: class -> mask pixel values (default: one class = any non-zero pixel)")
    loss: LossConfig = Field(default_factory=LossConfig)
    head: HeadConfig = Field(default_factory=_default_head, description="head by kind (auto: the encoder "
                                                                          "architecture's own, else the standard one)")
    data: Optional[Dict[str, Any]] = Field(None, description="overrides of the top-level `data` for this task "
                                                             "(tasks may come from other files/datasets)")
    threshold: float = Field(0.5, gt=0, lt=1, description="binary segmentation threshold")
    postprocess: Optional[PostprocessConfig] = Field(
        None, description="segmentation: dense CRF and/or mask cleaning applied to predictions (evaluate, predict)")
    label_map: Optional[Dict[str, str]] = Field(
        None, description="classification: labels-CSV label -> task class (several labels may map to one "
                          "class); images whose label is not a key are left out of this task, and counted")

    @model_validator(mode="before")
    @classmethod
    def _head_fits_type(cls, v):
        # checked before the head's own fields, so a head of the wrong task type is named as such
        head = v.get("head") if isinstance(v, dict) else None
        kind = head.get("kind") if isinstance(head, dict) else None
        if isinstance(kind, str) and kind in HEADS and v.get("type") in ("segmentation", "classification"):
            types = HEADS.get(kind).task_types
            if v["type"] not in types:
                raise ValidationError.from_exception_data("head", [{
                    "type": PydanticCustomError("head_type", "a head for {types} tasks, not {task}",
                                                {"types": " / ".join(types), "task": v["type"]}),
                    "loc": ("head", "kind"), "input": kind}])
        return v

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_str(cls, v):
        return {"name": v} if isinstance(v, str) else v

    @field_validator("classes")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.type == "classification" and len(self.classes) < 2:
            raise ValueError("a classification task needs at least 2 classes")
        if self.postprocess is not None and self.type != "segmentation":
            raise ValueError("postprocess is only for segmentation tasks")
        if self.label_map is not None:
            if self.type != "classification":
                raise ValueError("label_map is only for classification tasks")
            bad = sorted(set(self.label_map.values()) - set(self.classes))
            if bad:
                raise ValueError(f"label_map maps to {bad[0]!r}, which is not one of the classes {self.classes}")
            unmapped = [c for c in self.classes if c not in self.label_map.values()]
            if unmapped:
                raise ValueError(f"label_map gives no label for class {unmapped[0]!r}")
        if self.mask_classes is not None:
            if self.type != "segmentation":
                raise ValueError("mask_classes is only for segmentation tasks")
            missing = [c for c in self.classes if c not in self.mask_classes]
            extra = [c for c in self.mask_classes if c not in self.classes]
            if missing or extra:
                raise ValueError(f"mask_classes keys must be the task classes {self.classes}")
        elif self.type == "segmentation" and len(self.classes) > 1:
            raise ValueError("a segmentation task with several classes needs mask_classes (class -> pixel values)")
        return self


class StrategyConfig(TrainConfig):
    """How the heads are fine-tuned on the trained representation.

    ``independent`` uses each task's own training settings. ``alternating`` and ``joint`` train the encoder
    and the heads together for ``epochs`` of this section (an epoch = every task's steps per epoch);
    ``alternating`` uses each task's own optimizer, ``joint`` this section's ``optimizer``. Strategies are
    plug-ins (:mod:`umsrep.train.strategies`): the fields only one strategy reads (``ratios``, ``weighting``) are
    declared by its ``Settings`` class and validated by it; such a field set to something else than its default
    must belong to ``kind`` or a ``compare`` strategy.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    kind: str = Field("independent", description="independent: encoder frozen, one optimizer per head; "
                                                 "alternating: switch task batches at `ratios`, encoder updated; "
                                                 "joint: one weighted loss (umsrep/train/strategies/)")
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig(name="adam", learning_rate=1e-4))
    compare: List[str] = Field(default_factory=list, description="more strategies fine-tuned from the same "
                                                                 "representation and compared with `kind` in "
                                                                 "metrics.json `comparison`")

    @model_validator(mode="before")
    @classmethod
    def _plugin_fields(cls, v):
        """Validate each strategy's own fields with its Settings class (defaults filled in for every strategy)."""
        if not isinstance(v, dict):
            return v
        errors = []
        names = STRATEGIES.names()
        for key, value in [("kind", v.get("kind", "independent"))] + [(f"compare[{i}]", c) for i, c in
                                                                       enumerate(v.get("compare") or [])]:
            if value not in names:
                errors.append({"type": "literal_error", "loc": tuple(key.replace("]", "").split("[")) if "[" in key
                               else (key,), "input": value, "ctx": {"expected": ", ".join(map(repr, names))}})
        own = {f: n for n in names for f in STRATEGIES.get(n).Settings.model_fields}
        for key in v:
            if key not in cls.model_fields and key not in own:
                errors.append({"type": "extra_forbidden", "loc": (key,), "input": v[key]})
        if errors:
            for e in errors:
                if e["loc"][0] == "compare":
                    e["loc"] = ("compare", int(e["loc"][1]))
            raise ValidationError.from_exception_data("strategy", errors)
        out = {k: x for k, x in v.items() if k in cls.model_fields}
        for n in names:
            fields = STRATEGIES.get(n).Settings.model_fields
            sub = STRATEGIES.get(n).Settings.model_validate({k: x for k, x in v.items() if k in fields})
            out.update({k: getattr(sub, k) for k in fields})
        return out

    @model_validator(mode="after")
    def _used(self):
        used = {self.kind, *self.compare}
        for n in STRATEGIES.names():
            settings = STRATEGIES.get(n).Settings
            for f, info in settings.model_fields.items():
                if n in used or f not in (self.model_extra or {}):
                    continue
                default = settings().model_dump().get(f)
                value = getattr(self, f)
                if (value.model_dump() if isinstance(value, BaseModel) else value) != default:
                    raise ValueError(f"{f}: only the {n} strategy uses it, and it is neither `kind` nor in "
                                     f"`compare`")
        return self

    def settings_of(self, kind: str):
        """This section as strategy ``kind`` reads it (its ``Settings`` fields + the shared training settings)."""
        return self.model_copy(update={"kind": kind})


class DistributeConfig(Strict):
    strategy: Literal["default", "one_device", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute strategy; multi_worker reads TF_CONFIG")
    devices: Optional[List[str]] = Field(None, description="one_device/mirrored: device names "
                                                           "(default: all GPUs, else the CPU)")


MEASURE_PARAMS = ("region", "distance", "fit_degree", "edge", "min_span", "angle_window", "min_fascicle_length",
                  "fascicle_line", "max_fascicle_length")


class DeriveConfig(Strict):
    """A ``derive`` entry: a decision (``rule``) or a measurement from masks (``measure`` + ``from``); the
    measurement fields are read by the kinds that use them (umsrep.derive.measure, docs/measurements.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)

    rule: Optional[str] = Field(None, min_length=1, description="rule over head outputs (umsrep.derive.rules), e.g. "
                                "quality == \"good\" and flow == \"TR\" and p(flow) >= 0.8")
    measure: Optional[str] = Field(None, description="a measurement kind from masks: thickness, pennation_angle, "
                                                     "fascicle_length (umsrep.derive.measure)")
    inputs: Optional[Dict[str, str]] = Field(None, alias="from", description="measure: input role -> segmentation "
                                             "task, e.g. {aponeurosis: apo, fascicles: fasc}")
    region: float = Field(0.5, gt=0, le=1, description="thickness: central fraction of the span where both "
                                                       "aponeuroses are drawn")
    distance: Literal["vertical", "perpendicular"] = Field(
        "vertical", description="thickness: along the image columns (the beam) or perpendicular to the superficial "
                                "aponeurosis")
    fit_degree: int = Field(1, ge=1, le=3, description="polynomial degree of the aponeurosis curves")
    edge: Literal["inner", "centre"] = Field("inner", description="aponeurosis curve through the band's inner edge "
                                                                  "(muscle side) or its centre line")
    min_span: float = Field(0.2, gt=0, le=1, description="an aponeurosis spans at least this fraction of the width")
    angle_window: float = Field(10.0, gt=0, le=90, description="fascicles within this many degrees of the dominant "
                                                               "orientation count")
    min_fascicle_length: float = Field(0.03, ge=0, lt=1, description="shorter fascicle segments (fraction of the "
                                                                     "image width) are ignored")
    fascicle_line: Literal["dominant", "own"] = Field(
        "dominant", description="fascicle_length: each fascicle extended with the dominant orientation or its own")
    max_fascicle_length: float = Field(
        3.0, gt=0, description="fascicle_length: a fascicle line longer than this many image widths between the "
                               "aponeuroses (nearly parallel to them, so a small angle error changes it a lot) is not "
                               "measured")
    description: Optional[str] = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.rule is None) == (self.measure is None):
            raise ValueError("give either `rule` (a decision) or `measure` (a measurement from masks)")
        if self.rule is not None:
            extra = self.changed(MEASURE_PARAMS + ("inputs",))
            if extra:
                raise ValueError(f"{'from' if extra[0] == 'inputs' else extra[0]} is for measurements (`measure`), "
                                 "not rules")
        return self

    def changed(self, names) -> List[str]:
        """Those of ``names`` set to something else than their default (a dumped recipe sets every field)."""
        return sorted(k for k in names if getattr(self, k) != type(self).model_fields[k].default)


class PixelSpacingConfig(Strict):
    """Millimetres per pixel of the ORIGINAL images, for measurements in mm (DICOM inputs: PixelSpacing wins)."""

    mm: Optional[Union[float, Tuple[float, float]]] = Field(
        None, description="one spacing for every image: a number, or [row, column] mm per pixel")
    column: Optional[str] = Field(None, description="labels-CSV column with each image's spacing (mm per pixel); "
                                                    "empty cells fall back to `mm`")

    @field_validator("mm")
    @classmethod
    def _positive(cls, v):
        vals = [v] if isinstance(v, (int, float)) else list(v or [])
        if any(x <= 0 for x in vals):
            raise ValueError("pixel spacing must be > 0 mm")
        return v


class PatientTarget(Strict):
    column: str = Field("label", description="labels-CSV column with the group's class (the same on all its images)")
    label_map: Optional[Dict[str, str]] = Field(None, description="column value -> class (e.g. DCM vs rest); "
                                                                  "groups whose value is not a key are left out")
    classes: Optional[List[str]] = Field(None, min_length=2, description="class order (default: sorted)")


class PatientFeature(Strict):
    """One per-group feature: exactly one of ``area`` (``task.class`` pixels summed over the group's images, at
    ``frame``), ``thickness`` (the wall thickness of ``task.class`` over the group's images at ``frame``, summarised
    by ``stat``), ``change`` ([a, b] -> (a - b) / a, e.g. an ejection fraction) or ``ratio`` ([a, b] -> a / b)."""

    area: Optional[str] = Field(None, description="task.class (a segmentation task's class), or task (any class)")
    thickness: Optional[str] = Field(
        None, description="task.class: thickness of that region (twice the distance to its edge along its medial "
                          "ridge, e.g. the myocardial wall), pooled over the group's images")
    stat: Literal["mean", "cv", "p10_p90", "max"] = Field(
        "mean", description="thickness: mean, coefficient of variation (SD / mean), 10th over 90th percentile "
                            "(a thin segment in a thick wall lowers it), or maximum")
    frame: Optional[str] = Field(None, description="area, thickness: a name of `frames` (default: every image of "
                                                   "the group)")
    change: Optional[Tuple[str, str]] = Field(None, description="[a, b] feature names -> (a - b) / a")
    ratio: Optional[Tuple[str, str]] = Field(None, description="[a, b] feature names -> a / b")

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.area, self.thickness, self.change, self.ratio)) != 1:
            raise ValueError("give exactly one of area: task.class, thickness: task.class, change: [a, b], "
                             "ratio: [a, b]")
        if self.frame is not None and self.area is None and self.thickness is None:
            raise ValueError("frame is for area and thickness features")
        if self.stat != "mean" and self.thickness is None:  # the default is written into resolved recipes
            raise ValueError("stat is for thickness features")
        return self

    @property
    def region(self) -> Optional[str]:
        """``task.class`` of an area or thickness feature (None for change / ratio)."""
        return self.area if self.area is not None else self.thickness


class PatientConfig(Strict):
    """Patient-level tasks (umsrep.derive.patient): images grouped by a labels-CSV column, per-group features
    from the segmentation heads, and small scikit-learn classifiers trained on the training groups."""

    group_by: str = Field(description="labels-CSV column naming the group (patient) of each image")
    frame_column: Optional[str] = Field(None, description="labels-CSV column naming the frame/phase of an image")
    frames: Optional[Dict[str, str]] = Field(None, description="frame name -> value in frame_column, "
                                                               "e.g. {ED: '01', ES: '02'}")
    areas: Optional[Dict[str, List[str]]] = Field(
        None, description="shorthand: task -> classes; an area feature <class>_<frame> per class and frame")
    features: Dict[str, PatientFeature] = Field(default_factory=dict, description="named per-group features")
    targets: Dict[str, PatientTarget] = Field(min_length=1, description="per-group classifications to learn")
    classifier: Literal["logistic_regression", "random_forest"] = "logistic_regression"
    train_features: Literal["predicted", "true"] = Field(
        "predicted", description="features of the training groups from predicted or from true masks")

    @field_validator("train_features", mode="before")
    @classmethod
    def _true_unquoted(cls, v):
        return "true" if v is True else v  # YAML reads an unquoted `true` (in a recipe or --set) as a boolean

    @model_validator(mode="after")
    def _frames(self):
        if (self.frames is None) != (self.frame_column is None):
            raise ValueError("frame_column and frames go together")
        return self

    def feature_specs(self, tasks) -> Dict[str, PatientFeature]:
        """Every feature (``areas`` expanded first) in a computable order, checked against ``tasks``
        ({name: TaskConfig}); raises ValueError naming ``patient.<field>``."""
        frames = list(self.frames or {}) or [None]
        out: Dict[str, PatientFeature] = {}
        for task, classes in (self.areas or {}).items():
            for c in classes:
                for f in frames:
                    name = c if f is None else f"{c}_{f}"
                    if name in out:
                        raise ValueError(f"patient.areas: feature {name!r} comes twice (classes of two tasks?)")
                    out[name] = PatientFeature(area=f"{task}.{c}", frame=f)
        for name, f in self.features.items():
            if name in out:
                raise ValueError(f"patient.features.{name}: also made by patient.areas")
            out[name] = f
        for name, f in out.items():
            where = f"patient.features.{name}" if name in self.features else "patient.areas"
            if f.region is not None:
                task, _, cls = f.region.partition(".")
                if f.thickness is not None and not cls:
                    raise ValueError(f"{where}: thickness needs task.class (one region), got {f.thickness!r}")
                if task not in tasks or tasks[task].type != "segmentation":
                    seg = sorted(n for n, t in tasks.items() if t.type == "segmentation")
                    raise ValueError(f"{where}: {task!r} is not a segmentation task; those are {seg}")
                if cls and cls not in tasks[task].classes:
                    raise ValueError(f"{where}: {cls!r} is not a class of {task!r} {list(tasks[task].classes)}")
                if f.frame is not None and f.frame not in (self.frames or {}):
                    raise ValueError(f"{where}: frame {f.frame!r} is not one of frames {sorted(self.frames or {})}")
            else:
                refs = f.change or f.ratio
                before = list(out)[:list(out).index(name)]
                bad = [r for r in refs if r not in before]
                if bad:
                    raise ValueError(f"{where}: {bad[0]!r} is not a feature defined before it; "
                                     f"features are {before}")
        if not out:
            raise ValueError("patient: no features (give areas or features)")
        return out


class OutputConfig(Strict):
    dir: str = Field("runs", description="parent folder of run directories (`--out` overrides)")
    tensorboard: bool = True
    html: bool = Field(True, description="write report.html (figures need the model and the test images)")


class SearchParam(Strict):
    """One dimension of a search space: exactly one of choice / int / float / boolean."""

    choice: Optional[List[Any]] = Field(None, min_length=1)
    int: Optional[Tuple[builtins.int, builtins.int]] = Field(None, description="[min, max], inclusive")
    float: Optional[Tuple[builtins.float, builtins.float]] = Field(None, description="[min, max]")
    step: Optional[builtins.float] = Field(None, gt=0)
    log: bool = Field(False, description="int/float: sample on a log scale")
    boolean: Optional[bool] = Field(None, description="true: search over {false, true}")

    @model_validator(mode="after")
    def _one(self):
        kinds = [k for k in ("choice", "int", "float") if getattr(self, k) is not None]
        kinds += ["boolean"] if self.boolean else []
        if len(kinds) != 1:
            raise ValueError("give exactly one of choice: [...], int: [min, max], float: [min, max], boolean: true")
        rng = self.int or self.float
        if rng is not None and not rng[0] < rng[1]:
            raise ValueError(f"range {list(rng)}: min must be < max")
        if self.log and rng is not None and rng[0] <= 0:
            raise ValueError("log sampling needs min > 0")
        return self


class SearchConfig(Strict):
    """``umsrep tune``: a KerasTuner search over recipe fields, every trial a `fit` by the same engine."""

    tuner: Literal["random", "bayesian", "hyperband"] = "random"
    objective: str = Field(description="split.task.metric on the validation split, e.g. val.diagnosis.accuracy, "
                                       "val.lesion.dice, val.denoise.psnr")
    direction: Literal["auto", "max", "min"] = Field("auto", description="auto: min for losses, else max")
    max_trials: int = Field(10, ge=1)
    epochs: int = Field(5, ge=1, description="epochs of the tuned stage per trial (hyperband: the maximum)")
    stage: Literal["representation", "heads"] = Field(
        "heads", description="representation: each trial trains a representation with `epochs`; heads: the "
                             "representation is trained once and reused, each trial fine-tunes the heads")
    space: Dict[str, SearchParam] = Field(min_length=1, description="recipe field path -> values")


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    seeds: Optional[List[int]] = Field(None, min_length=1, description="train the recipe once per training seed "
                                       "on one split (sub-runs seed<s>/): mean, SD and per-seed values")
    modality: str = Field(min_length=1, description="e.g. ultrasound, cxr, cmr, doppler")
    data: DataConfig
    representation: RepresentationConfig = Field(default_factory=_default_representation)
    tasks: Dict[str, TaskConfig] = Field(min_length=1)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)
    baseline: bool = Field(False, description="also train the baseline: a separate model per task (same "
                                              "encoder + head architecture, random init) on denoised images")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32", description="Keras dtype policy while training; losses and metrics stay float32")
    search: Optional[SearchConfig] = Field(None, description="search space for `umsrep tune`")
    derive: Dict[str, DeriveConfig] = Field(
        default_factory=dict, description="named decisions (rule) and measurements (measure) computed from the "
                                          "heads' outputs (derivable tasks)")
    pixel_spacing: Optional[PixelSpacingConfig] = Field(
        None, description="mm per pixel of the original images, for measurements in mm")
    patient: Optional[PatientConfig] = Field(None, description="patient-level tasks from per-group features")
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("derive", mode="before")
    @classmethod
    def _derive_str(cls, v):
        return {k: ({"rule": r} if isinstance(r, str) else r) for k, r in v.items()} if isinstance(v, dict) else v

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, v):
        for name in v:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name):
                raise ValueError(f"task name {name!r} must start with a letter and use letters, digits, _")
            if name == "denoise":
                raise ValueError("task name 'denoise' is reserved for the denoising output")
        return v

    @model_validator(mode="after")
    def _cross(self):
        rep = self.representation
        st = self.strategy
        frozen = STRATEGIES.get(st.kind).freezes_encoder
        if rep.trainable and frozen and len(self.tasks) > 1:
            raise ValueError(f"representation.trainable: true with strategy.kind: {st.kind} would let each head "
                             "change the shared encoder in turn; use one task, or alternating/joint")
        if rep.trainable is False and not all(STRATEGIES.get(k).freezes_encoder for k in [st.kind, *st.compare]):
            raise ValueError("representation.trainable: false freezes the encoder, which only the independent "
                             "strategy does; use strategy.kind: independent")
        if rep.training == "none" and rep.source is None and frozen and not rep.trainable:
            raise ValueError(f"strategy.kind: {st.kind} trains heads on a frozen encoder, but representation "
                             f"{rep.kind!r} is not trained first (train: none); use joint or alternating, set "
                             "representation.train: denoising|supervised, or trainable: true (one task)")
        if rep.training == "supervised" and rep.source is None:
            cls_tasks = [n for n, t in self.tasks.items() if t.type == "classification"]
            if rep.task is None:
                if not cls_tasks:
                    raise ValueError(f"representation.kind: {rep.kind} needs a classification task in `tasks`")
            elif rep.task not in cls_tasks:
                raise ValueError(f"representation.task: must name a classification task, one of {cls_tasks}")
        ratios, weighting = getattr(st, "ratios", None), getattr(st, "weighting", None)
        for field_name, named in (("strategy.ratios", ratios if isinstance(ratios, dict) else None),
                                  ("strategy.weighting.weights", weighting.weights if weighting else None)):
            unknown = sorted(set(named or {}) - set(self.tasks))
            if unknown:
                raise ValueError(f"{field_name}: unknown task {unknown[0]!r}; tasks are {sorted(self.tasks)}")
        if rep.source is None:
            self.resolve_heads(rep.kind)
        self.derive_rules()
        self.derive_measurements()
        if self.patient is not None:
            self.patient.feature_specs(self.tasks)
            if self.data.pool:   # patient ids of two sets could merge; the features read one labels table
                raise ValueError("patient: per-patient classifiers are not combined with data.pool (pooled sets' "
                                 "patient ids are not one table); train them on one data set")
        if self.seeds is not None:
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: each seed once, got {self.seeds}")
            if self.data.split.folds is not None:
                raise ValueError("seeds: repeated seeds run on one split; not combined with data.split.folds")
        no_scaling = [k for k in [st.kind, *st.compare] if not STRATEGIES.get(k).supports_mixed_float16]
        if self.precision == "mixed_float16" and no_scaling:
            raise ValueError(f"precision: mixed_float16 needs loss scaling, which the {no_scaling[0]} strategy's "
                             "weighting does not do; use mixed_bfloat16 (no loss scaling needed)")
        for name, t in self.tasks.items():
            if t.data is not None:
                try:
                    self.data.override(t.data)
                except ValidationError as e:
                    raise ValueError(f"tasks.{name}.data: {_first_message(e)}") from None
        for i, extra in enumerate(getattr(self.representation, "extra_data", None) or []):
            where = f"representation.extra_data[{i}]"
            try:
                cfg = self.data.override(extra)
            except ValidationError as e:
                raise ValueError(f"{where}: {_first_message(e)}") from None
            if (cfg.image_size, cfg.channels) != (self.data.image_size, self.data.channels):
                raise ValueError(f"{where}: image_size and channels must be the top-level data's (one encoder input)")
        return self

    # -- helpers used by the trainer -------------------------------------------------------------
    def resolve_heads(self, encoder_kind: str) -> None:
        """Resolve every ``head.kind: auto`` for encoder ``encoder_kind`` (the recipe's architecture, or a loaded
        encoder's) and check each head against its task type and the encoder; ValueError naming the field."""
        for name, t in self.tasks.items():
            head = _resolve_task_head(name, t, encoder_kind)
            if head is not t.head:
                t.head = head

    @property
    def split_seed(self) -> int:
        """The seed of the train/val/test split: ``data.split.seed``, else the recipe's ``seed``."""
        return self.seed if self.data.split.seed is None else self.data.split.seed

    def derive_rules(self) -> dict:
        """``{decision: parsed rule}`` in evaluation order (a decision after those it uses; the order in the recipe
        does not matter), checked against the heads (raises ValueError naming the field)."""
        from umsrep.derive.rules import RuleError, check_rule, heads_of, parse_rule

        heads = {n: (t.type, list(t.classes)) for n, t in self.tasks.items()}
        parsed = {}
        for name, d in self.derive.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name) or name in heads or name in ("p", "area"):
                raise ValueError(f"derive.{name}: a decision name must be an identifier and not a task name")
            if d.rule is None:
                continue  # a measurement: derive_measurements
            try:
                parsed[name] = parse_rule(d.rule)
            except RuleError as e:
                raise ValueError(f"derive.{name}: {e}") from None
        uses = {n: heads_of(node) & set(parsed) for n, node in parsed.items()}
        rules, left = {}, dict(parsed)
        while left:
            ready = [n for n in left if uses[n] <= set(rules)]
            if not ready:
                name = next(iter(left))
                raise ValueError(f"derive.{name}: decisions {sorted(left)} use each other in a cycle")
            for name in ready:
                try:
                    check_rule(left[name], heads, list(rules))
                except RuleError as e:
                    raise ValueError(f"derive.{name}: {e}") from None
                rules[name] = left.pop(name)
        return rules

    def derive_measurements(self) -> dict:
        """``{name: DeriveConfig}`` of the ``derive`` entries with ``measure``, checked against the registered
        measurement kinds and the tasks (raises ValueError naming ``derive.<name>...``)."""
        from umsrep.derive.measure import MEASUREMENTS

        out = {}
        for name, d in self.derive.items():
            if d.measure is None:
                continue
            if d.measure not in MEASUREMENTS:
                raise ValueError(f"derive.{name}.measure: unknown measurement {d.measure!r}; expected one of: "
                                 f"{', '.join(MEASUREMENTS.names())}")
            kind = MEASUREMENTS.get(d.measure)
            given = d.inputs or {}
            for role in given:
                if role not in kind.roles:
                    raise ValueError(f"derive.{name}.from.{role}: {d.measure} reads no {role!r}; its inputs are "
                                     f"{list(kind.roles)}")
            for role in kind.roles:
                if role not in given:
                    raise ValueError(f"derive.{name}.from: {d.measure} needs `{role}: <segmentation task>`")
                task = given[role]
                if task not in self.tasks:
                    raise ValueError(f"derive.{name}.from.{role}: unknown task {task!r}; tasks are "
                                     f"{sorted(self.tasks)}")
                if self.tasks[task].type != "segmentation":
                    raise ValueError(f"derive.{name}.from.{role}: {task!r} is a {self.tasks[task].type} task; "
                                     f"{role} needs a segmentation task")
            unused = [k for k in d.changed(MEASURE_PARAMS) if k not in kind.params]
            if unused:
                raise ValueError(f"derive.{name}.{unused[0]}: not used by {d.measure} (its settings: "
                                 f"{', '.join(kind.params)})")
            out[name] = d
        return out

    def extra_representation_data(self) -> List[DataConfig]:
        """``representation.extra_data``: the other data sets the representation also trains on."""
        return [self.data.override(d) for d in getattr(self.representation, "extra_data", None) or []]

    def task_data(self, task: str) -> DataConfig:
        t = self.tasks[task]
        if not t.data:
            return self.data
        return self.data.override(t.data)


def _resolve_task_head(name: str, task: TaskConfig, encoder_kind: Optional[str]):
    from umsrep.models import resolve_head

    try:
        return resolve_head(task.head, task.type, encoder_kind)
    except ValidationError as e:
        raise ValueError("; ".join(_format_error({**err, "loc": ("tasks", name, "head", *err["loc"])})
                                   for err in e.errors()[:3])) from None
    except ValueError as e:
        where = "kind" if task.head.kind != "auto" else f"kind (auto, for encoder {encoder_kind!r})"
        raise ValueError(f"tasks.{name}.head.{where}: {e}") from None


def task_head(name: str, task: TaskConfig, encoder_kind: Optional[str], source: str = "recipe") -> HeadSettings:
    """The head settings task ``name`` builds on an encoder of architecture ``encoder_kind`` (``auto`` resolved);
    RecipeError naming ``source`` and the field when the head does not fit the task or the encoder."""
    try:
        return _resolve_task_head(name, task, encoder_kind)
    except ValueError as e:
        raise RecipeError(f"{source}: {e}") from None


# ------------------------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, where: str = "") -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset UMSREP_DATA means :func:`umsrep.paths.data_root`."""

    def repl(m):
        var, default = m.group(1), m.group(2)
        if var in os.environ:
            return os.environ[var]
        if default is not None:
            return default
        if var == "UMSREP_DATA":
            from umsrep.paths import data_root

            return str(data_root())
        raise RecipeError(f"{where}: environment variable {var} is not set (use ${{{var}:-default}})")

    return _ENV.sub(repl, value)


def _expand_tree(obj, path=""):
    if isinstance(obj, dict):
        return {k: _expand_tree(v, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand_tree(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, str) and "${" in obj:
        return expand_env(obj, path)
    return obj


def apply_overrides(raw: dict, overrides: List[str], source: str = "--set") -> dict:
    """Apply ``key.path=value`` overrides; values are parsed as YAML scalars/lists."""
    from umsrep.io import load_yaml

    raw = copy.deepcopy(raw)
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"{source} {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise RecipeError(f"{source} {item!r}: empty key")
        try:
            parsed = load_yaml(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        node = raw
        for p in parts[:-1]:
            nxt = node.get(p) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[p] = nxt
            if not isinstance(nxt, dict):
                raise RecipeError(f"{source} {key}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = parsed
    return raw


def _loc(loc) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _first_message(e: ValidationError) -> str:
    return "; ".join(_format_error(err) for err in e.errors()[:3])


def _format_error(err) -> str:
    loc = _loc(tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        text = "unknown field"
    elif typ == "missing":
        text = "required field is missing"
    else:
        msg = msg.replace("Value error, ", "")
        inp = err.get("input")
        shown = "" if isinstance(inp, (dict, list)) or inp is None else f", got {inp!r}"
        text = f"{msg}{shown}"
    return f"{loc}: {text}" if loc else text


def parse_recipe(raw: Any, source: str = "recipe", overrides: Optional[List[str]] = None) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: expected a YAML mapping at the top level")
    raw = apply_overrides(raw, overrides or [])
    raw = _expand_tree(raw)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(f"{source}: {_first_message(e)}") from None


#: recipe sections computed from a trained model's outputs, not trained into it: `umsrep evaluate` / `predict`
#: accept ``--set`` on these (re-measure a finished run with other measurement parameters, no retraining)
POST_HOC_SECTIONS = ("derive", "patient")


def load_run_recipe(path, overrides: Optional[List[str]] = None) -> Recipe:
    """A finished run's recipe, with ``--set`` overrides of :data:`POST_HOC_SECTIONS` only (any other field
    would describe a model the run did not train: refused with one line naming it)."""
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if key.split(".")[0] not in POST_HOC_SECTIONS or "." not in key:
            raise RecipeError(f"--set {key}: only {' and '.join(s + '.*' for s in POST_HOC_SECTIONS)} can change "
                              "after training (computed from the trained heads); other fields need a new "
                              "`umsrep fit`")
    return load_recipe(path, overrides)


def load_recipe(path, overrides: Optional[List[str]] = None) -> Recipe:
    """Read, parse and validate a recipe file. YAML is parsed by :func:`umsrep.io.load_yaml`: duplicate keys are
    refused with their line, aliases are bounded before anything is constructed."""
    from umsrep.errors import DataError
    from umsrep.io import load_yaml, path_text, read_text, yaml_error_text

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path_text(path)}: recipe file not found")
    try:
        text = read_text(path, "recipe")
    except DataError as e:
        raise RecipeError(str(e)) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{path_text(path)}: {yaml_error_text(e)}") from None
    recipe = parse_recipe(raw, path_text(path), overrides)
    return recipe


def resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    """Make relative data roots and split files relative to ``base`` (the folder the recipe file is in, or the
    CWD): the ``data`` section's, its pooled sets', each task's own ``data`` and each ``representation.extra_data``
    entry's."""
    r = recipe.model_copy(deep=True)
    r.data.root = _resolved(r.data.root, base)
    r.data.split.file = _resolved(r.data.split.file, base)
    if r.data.pool:   # pooled sets' roots and split files, as the section's
        r.data.pool = [_resolved_entry(e, base) for e in r.data.pool]
    for task in r.tasks.values():
        if task.data:
            task.data = _resolved_entry(task.data, base)
    if getattr(r.representation, "extra_data", None):
        r.representation.extra_data = [_resolved_entry(e, base) for e in r.representation.extra_data]
    return r


def _resolved_entry(entry: dict, base: Path) -> dict:
    """An override of the ``data`` section (a ``data.pool`` entry, a task's ``data``, an ``extra_data`` entry) with
    its ``root`` and ``split.file`` resolved like the section's."""
    out = dict(entry)
    if "root" in out:
        out["root"] = _resolved(out["root"], base)
    if isinstance(out.get("split"), dict) and out["split"].get("file"):
        out["split"] = {**out["split"], "file": _resolved(out["split"]["file"], base)}
    return out


def _resolved(path, base: Path):
    """A relative path as given when it exists from the CWD, else relative to ``base``."""
    if path is None or os.path.isabs(str(path)):
        return path
    candidate = Path.cwd() / str(path)
    return str(candidate if candidate.exists() else (base / str(path)))


# fields that may differ between two runs of one recipe: its name, where and how it runs, not what it trains
RUN_FREE_FIELDS = ("name", "output", "distribute")


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def recipe_difference(was: Recipe, now: Recipe):
    """The first field (dotted path) in which two recipes train differently, as ``(field, was, now)``, or None.
    Fields of RUN_FREE_FIELDS are not compared; ``data.split.seed`` is compared as the seed the split uses (unset
    means the recipe's ``seed``)."""
    def fields(r):
        d = {k: v for k, v in r.model_dump(mode="json").items() if k not in RUN_FREE_FIELDS}
        d["data"]["split"]["seed"] = r.split_seed
        return d
    return _first_difference(fields(was), fields(now))


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
