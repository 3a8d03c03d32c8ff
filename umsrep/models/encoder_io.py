"""Saving and loading a UMS-Rep encoder together with the preprocessing it expects.

An encoder folder holds ``encoder.keras`` and ``preprocessing.json`` (modality, image size, channels,
normalization and its statistics). Loading into a recipe checks them: reusing an encoder with a different
modality or preprocessing is a classic silent failure, so it is refused with a clear message.
"""

from __future__ import annotations

import json
from pathlib import Path

from umsrep.errors import RecipeError
from umsrep.io import save_keras, write_json

ENCODER_FILE, PREPROC_FILE = "encoder.keras", "preprocessing.json"


def save_encoder(encoder, folder, preprocessing: dict):
    folder = Path(folder)
    save_keras(encoder, folder / ENCODER_FILE)
    write_json(folder / PREPROC_FILE, preprocessing)


def preprocessing_of(recipe, mean: float, std: float, kind: str) -> dict:
    d = recipe.data
    return {"modality": recipe.modality, "image_size": list(d.image_size), "channels": d.channels,
            "normalization": d.normalization, "mean": mean, "std": std, "kind": kind,
            "value_range": [0.0, 1.0]}


def find_encoder_folder(path) -> Path:
    p = Path(path)
    for cand in (p, p / "encoder"):
        if (cand / ENCODER_FILE).is_file() and (cand / PREPROC_FILE).is_file():
            return cand
    raise RecipeError(f"representation.init_from: {p} holds no {ENCODER_FILE} + {PREPROC_FILE} "
                      f"(give a run directory or an encoder folder)")


def check_preprocessing(saved: dict, recipe, where="representation.init_from") -> None:
    d = recipe.data
    want = {"modality": recipe.modality, "image_size": list(d.image_size), "channels": d.channels,
            "normalization": d.normalization}
    diffs = [f"{k} {saved.get(k)!r} (recipe: {v!r})" for k, v in want.items() if saved.get(k) != v]
    if diffs:
        raise RecipeError(f"{where}: encoder preprocessing does not match the recipe: " + ", ".join(diffs))


def read_preprocessing(path, recipe=None):
    """The encoder folder and its preprocessing card; with ``recipe``, refuse a mismatch. Cheap: no TF."""
    folder = find_encoder_folder(path)
    try:
        pre = json.loads((folder / PREPROC_FILE).read_text())
    except json.JSONDecodeError as e:
        raise RecipeError(f"{folder / PREPROC_FILE}: invalid JSON ({e.msg})") from None
    if recipe is not None:
        check_preprocessing(pre, recipe)
    return folder, pre


def load_encoder(path, recipe=None):
    """Load an encoder folder; with ``recipe``, refuse a modality/preprocessing mismatch."""
    import keras

    import umsrep.models.layers  # noqa: F401  (register custom layers)

    folder, pre = read_preprocessing(path, recipe)
    return keras.models.load_model(folder / ENCODER_FILE), pre
