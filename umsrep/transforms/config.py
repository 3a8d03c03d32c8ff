"""``data.augment`` in a recipe: a named preset plus per-transform overrides (no TensorFlow imported here).

    data:
      augment: strong                                   # a preset
      augment: {preset: strong, rotate: {p: 0.5, degrees: 20}, elastic: {p: 0.2}, flip_v: null}

A transform given in the recipe is the preset's settings for it (or the transform's defaults when the preset
does not use it) updated with the given fields; ``null`` or ``p: 0`` switches it off. The fields of
:class:`AugmentConfig` are generated from the :data:`~umsrep.transforms.base.TRANSFORMS` registry, so a newly
registered transform is a recipe field at once.
"""

from __future__ import annotations

from typing import Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, model_serializer, model_validator

import umsrep.transforms.intensity  # noqa: F401  (register the transforms)
import umsrep.transforms.spatial  # noqa: F401
from umsrep.transforms.base import TRANSFORMS, Transform

#: preset -> {transform: settings}; a transform not listed is off. ``strong`` follows nnU-Net's 2-D defaults
#: (rotation, scaling, mirroring, Gaussian noise, blur, brightness, contrast, low resolution, gamma).
PRESETS: Dict[str, Dict[str, dict]] = {
    "none": {},
    "light": {
        "flip_h": {"p": 0.5},
        "rotate": {"p": 0.3, "degrees": 10},
        "scale": {"p": 0.3, "zoom": [0.9, 1.1]},
        "brightness": {"p": 0.3, "factor": [0.9, 1.1]},
        "contrast": {"p": 0.3, "factor": [0.9, 1.1]},
        "gamma": {"p": 0.3, "gamma": [0.8, 1.25]},
    },
    "strong": {
        "flip_h": {"p": 0.5},
        "flip_v": {"p": 0.5},
        "rotate": {"p": 0.3, "degrees": 30},
        "scale": {"p": 0.3, "zoom": [0.85, 1.25]},
        "noise": {"p": 0.15, "sigma": [0.0, 0.05]},
        "blur": {"p": 0.2, "sigma": [0.5, 1.0]},
        "brightness": {"p": 0.15, "factor": [0.75, 1.25]},
        "contrast": {"p": 0.15, "factor": [0.75, 1.25]},
        "lowres": {"p": 0.15, "zoom": [0.5, 1.0]},
        "gamma": {"p": 0.3, "gamma": [0.7, 1.5]},
    },
}


class _AugmentBase(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    preset: Literal["none", "light", "strong"] = Field("none", description="named set of transforms")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if v is None:
            return {}
        if isinstance(v, str):
            return {"preset": v}
        if isinstance(v, dict):
            unknown = [k for k in v if k != "preset" and k not in TRANSFORMS]
            if unknown:
                raise ValueError(f"unknown transform {unknown[0]!r}; expected preset or one of: "
                                 f"{', '.join(TRANSFORMS.names())}")
        return v

    @model_serializer(mode="plain")
    def _dump(self, info):
        """Only what the recipe said (the preset and the overrides as given), so a dumped recipe reloads
        to the same settings."""
        out = {"preset": self.preset}
        for name in TRANSFORMS.names():
            if name in self.model_fields_set:
                v = getattr(self, name)
                out[name] = None if v is None else v.model_dump(mode=info.mode, exclude_unset=True)
        return out

    def transforms(self) -> Dict[str, Transform]:
        """The resolved transforms that are on (``p > 0``), name -> settings."""
        out = {}
        for name in TRANSFORMS.names():
            cls = TRANSFORMS.get(name)
            base = PRESETS[self.preset].get(name)
            if name in self.model_fields_set:
                given = getattr(self, name)
                if given is None:
                    continue
                t = cls.model_validate({**(base or {}), **given.model_dump(exclude_unset=True)})
            elif base is not None:
                t = cls.model_validate(base)
            else:
                continue
            if t.p > 0:
                out[name] = t
        return out

    @property
    def active(self) -> bool:
        return bool(self.transforms())

    def summary(self) -> str:
        """One line for logs: the preset and each transform with its probability."""
        ts = self.transforms()
        if not ts:
            return "none"
        return f"{self.preset}: " + ", ".join(f"{n} p={t.p:g}" for n, t in ts.items())


def _make_config():
    fields = {name: (Optional[TRANSFORMS.get(name)], Field(None, description=TRANSFORMS.get(name).describe()))
              for name in TRANSFORMS.names()}
    return create_model("AugmentConfig", __base__=_AugmentBase, __module__=__name__, **fields)


AugmentConfig = _make_config()
AugmentConfig.__doc__ = "data.augment: a preset (none, light, strong) and per-transform overrides."


def log_augmentation(recipe, log=print) -> None:
    """One log line with the augmentation of the representation data and of each task with its own data, when
    any is on."""
    parts = {"data": recipe.data.augment.summary(),
             **{f"tasks.{n}.data": recipe.task_data(n).augment.summary() for n, t in recipe.tasks.items() if t.data}}
    if set(parts.values()) != {"none"}:
        log("augmentation (training split only): " + "; ".join(f"{k}: {v}" for k, v in parts.items()))
