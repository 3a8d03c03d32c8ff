"""Saving and loading a UMS-Rep encoder together with the preprocessing it expects.

An encoder folder holds ``encoder.keras`` and ``preprocessing.json`` (modality, image size, channels,
normalization and its statistics), and ``denoise.keras`` — the denoising decoder it was trained with — when the
representation learned by denoising; a pretrained one (:mod:`umsrep.pretrained`) holds ``card.yaml`` instead, whose
``preprocessing`` section says the same and whose SHA-256 is checked. Loading into a recipe checks them: reusing
an encoder with a different modality or preprocessing is a classic silent failure, so it is refused with a clear
message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from umsrep.errors import RecipeError
from umsrep.io import save_keras, write_json
from umsrep.pretrained import DENOISER_FILE, ENCODER_FILE

PREPROC_FILE = "preprocessing.json"


def save_encoder(encoder, folder, preprocessing: dict, denoise_head=None):
    """``denoise_head``: the denoising decoder trained with this encoder (saved beside it as ``denoise.keras``, so
    the encoder travels with the denoiser it was made with)."""
    folder = Path(folder)
    save_keras(encoder, folder / ENCODER_FILE)
    if denoise_head is not None:
        save_keras(denoise_head, folder / DENOISER_FILE)
    write_json(folder / PREPROC_FILE, preprocessing)


def preprocessing_of(recipe, mean: float, std: float, kind: str) -> dict:
    d = recipe.data
    return {"modality": recipe.modality, "image_size": list(d.image_size), "channels": d.channels,
            "normalization": d.normalization, "mean": mean, "std": std, "kind": kind,
            "value_range": [0.0, 1.0], **({"resize": d.resize} if d.resize != "stretch" else {})}


def find_encoder_folder(path, where="representation.init_from") -> Path:
    p = Path(path)
    for cand in (p, p / "encoder"):
        if (cand / ENCODER_FILE).is_file() and (cand / PREPROC_FILE).is_file():
            return cand
    raise RecipeError(f"{where}: {p} holds no {ENCODER_FILE} + {PREPROC_FILE} "
                      f"(give a run directory or an encoder folder)")


def check_preprocessing(saved: dict, recipe, where="representation.init_from", warn=None) -> None:
    """Refuse (or, with ``representation.allow_mismatch``, warn about) an encoder made for other inputs."""
    d = recipe.data
    want = {"modality": recipe.modality, "image_size": list(d.image_size), "channels": d.channels,
            "normalization": d.normalization}
    diffs = [f"{k} {saved.get(k)!r} (recipe: {v!r})" for k, v in want.items() if saved.get(k) != v]
    if saved.get("resize", "stretch") != d.resize:
        diffs.append(f"resize {saved.get('resize', 'stretch')!r} (recipe: {d.resize!r})")
    if diffs:
        msg = f"{where}: encoder preprocessing does not match the recipe: " + ", ".join(diffs)
        if not recipe.representation.allow_mismatch:
            raise RecipeError(msg + " (set representation.allow_mismatch: true to load it anyway)")
        (warn or _warn)("warning: " + msg + " — loaded anyway (representation.allow_mismatch)")


def _warn(msg):
    print(msg, file=sys.stderr, flush=True)


def read_preprocessing(path, recipe=None, where=None, warn=None):
    """The encoder folder and the preprocessing it expects; with ``recipe``, refuse a mismatch. Cheap: no TF.

    ``path`` is a pretrained encoder (registry name or folder with card.yaml, whose SHA-256 is verified), a run
    directory or an encoder folder with preprocessing.json."""
    from umsrep import pretrained

    kind = recipe.representation.kind if recipe is not None else None
    where = where or ("representation.name" if kind == "pretrained" else "representation.init_from")
    if kind == "pretrained" or (Path(path) / pretrained.CARD_FILE).is_file():
        folder = pretrained.resolve(str(path), where)
        card = pretrained.verify(folder)
        pre = dict(card["preprocessing"])
        arch = card.get("architecture")
        if getattr(recipe, "baseline", False) and not (isinstance(arch, dict) and arch.get("kind")):
            raise RecipeError(f"baseline: true rebuilds the encoder's architecture from scratch, and the card of "
                              f"{path} names none (`architecture:`); re-publish it, or compare against random "
                              "init with bench/reuse.py")
    else:
        folder = find_encoder_folder(path, where)
        try:
            pre = json.loads((folder / PREPROC_FILE).read_text())
        except json.JSONDecodeError as e:
            raise RecipeError(f"{folder / PREPROC_FILE}: invalid JSON ({e.msg})") from None
    if recipe is not None:
        check_preprocessing(pre, recipe, where, warn)
    return folder, pre


def load_encoder(path, recipe=None, warn=None):
    """Load an encoder (see :func:`read_preprocessing`); with ``recipe``, refuse a modality/preprocessing mismatch."""
    folder, pre = read_preprocessing(path, recipe, warn=warn)
    return _encoder_in(folder, pre, recipe)


def _encoder_in(folder, pre, recipe=None):
    """The encoder of a folder :func:`read_preprocessing` has checked, fitted to ``recipe``'s image size."""
    from umsrep.io import load_keras  # registers the custom layers, loads in safe mode, one-line errors

    encoder = load_keras(folder / ENCODER_FILE, "encoder")
    if recipe is not None:
        size = (*recipe.data.image_size, recipe.data.channels)
        if tuple(encoder.input_shape[1:]) != size:
            encoder = with_input_shape(encoder, size, folder / ENCODER_FILE)
        # the run reads images as its recipe says (size, resize), whatever the encoder was trained at: run.json
        # records that, so predict and export fit new images the same way (the normalization stays the encoder's)
        pre = {k: v for k, v in pre.items() if k != "resize"}
        pre.update({"image_size": list(recipe.data.image_size),
                    **({"resize": recipe.data.resize} if recipe.data.resize != "stretch" else {})})
    return encoder, pre


def with_input_shape(encoder, shape, source="encoder"):
    """The same encoder (same layers, same weights) for inputs of ``shape`` (height, width, channels): a
    convolutional encoder runs at any image size, so one trained at 128x128 is rebuilt to read 256x256 images.
    A different channel count cannot take the weights and is refused."""
    import keras

    from umsrep.errors import RecipeError

    if encoder.input_shape[-1] != shape[-1]:
        raise RecipeError(f"{source}: the encoder reads {encoder.input_shape[-1]} channel(s), the recipe gives "
                          f"{shape[-1]} (data.channels)")
    config = encoder.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = (None, *shape)
    try:
        rebuilt = keras.Model.from_config(config)
    except ValueError as e:
        raise RecipeError(f"{source}: the encoder cannot be rebuilt for {shape[0]}x{shape[1]} inputs ({e})") from None
    rebuilt.set_weights(encoder.get_weights())
    return rebuilt


def load_denoiser(path, recipe=None, warn=None):
    """image -> denoised image: the saved encoder ``path`` (as :func:`load_encoder` finds it) with the denoising
    decoder it was trained with (``denoise.keras`` beside it; a pretrained card's SHA-256 covers it). None when
    the folder has no denoiser (a supervised encoder, or one saved before denoisers were kept)."""
    from umsrep.io import load_keras
    from umsrep.models.pyramid import attach_one, fits

    folder, pre = read_preprocessing(path, recipe, warn=warn)
    if not (folder / DENOISER_FILE).is_file():
        return None
    encoder, _ = _encoder_in(folder, pre, recipe)
    head = load_keras(folder / DENOISER_FILE, "denoising decoder")
    if not fits(head, encoder):
        size = "x".join(str(v) for v in encoder.input_shape[1:3])
        raise RecipeError(f"{folder / DENOISER_FILE}: the denoising decoder was saved for other feature shapes than "
                          f"the encoder gives at {size} (data.image_size); use the image size it was trained at")
    return attach_one(encoder, head)
