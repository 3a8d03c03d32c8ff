"""Shipped (and user-published) pretrained UMS-Rep encoders: the registry, model cards and their verification.

A pretrained encoder is a folder holding ``encoder.keras`` and ``card.yaml``. The card says what the encoder
expects (``preprocessing``: modality, image size, channels, normalisation and its statistics, value range,
encoder kind), how it was made (training data and licence, the recipe, the run's denoising PSNR/SSIM per noise
level, parameters, umsrep version) and the SHA-256 of ``encoder.keras``; loading recomputes the hash and refuses
a changed file. The shipped encoders live in ``pretrained/`` at the repository root (``UMSREP_PRETRAINED``
overrides the folder); a recipe names one with ``representation: {kind: pretrained, name: us-cdae}`` or gives
the path of any encoder folder. ``umsrep pretrained publish RUN NAME`` turns a finished run into such a folder.

Cheap to import: no TensorFlow (``umsrep pretrained list`` and recipe validation use it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List

import yaml

from umsrep.errors import RecipeError, RunDirError
from umsrep.io import write_text

CARD_FILE, ENCODER_FILE, DENOISER_FILE = "card.yaml", "encoder.keras", "denoise.keras"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
CARD_VERSION = 1


def pretrained_root() -> Path:
    """The registry folder: ``$UMSREP_PRETRAINED`` or ``pretrained/`` next to the package."""
    env = os.environ.get("UMSREP_PRETRAINED")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "pretrained"


def names() -> List[str]:
    root = pretrained_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def resolve(ref: str, where: str = "representation.name") -> Path:
    """A registry name or an encoder-folder path -> the folder (must hold a card)."""
    root = pretrained_root()
    if NAME_RE.match(ref) and (root / ref / CARD_FILE).is_file():
        return root / ref
    p = Path(ref)
    if (p / CARD_FILE).is_file():
        return p
    if p.exists():
        raise RecipeError(f"{where}: {p} holds no {CARD_FILE} (a pretrained encoder folder has {ENCODER_FILE} + "
                          f"{CARD_FILE}; make one from a run with `umsrep pretrained publish RUN NAME`)")
    shipped = ", ".join(names()) or "none"
    raise RecipeError(f"{where}: no pretrained encoder {ref!r} (shipped: {shipped}; or give an encoder folder path)")


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(folder) -> Dict:
    """The card of an encoder folder (UTF-8 YAML: duplicate keys and alias bombs refused), or a one-line error."""
    from umsrep.errors import DataError
    from umsrep.io import load_yaml, path_text, read_text, yaml_error_text

    path = Path(folder) / CARD_FILE
    try:
        card = load_yaml(read_text(path, "card"))
    except DataError as e:
        raise RecipeError(str(e)) from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path_text(path)}: {yaml_error_text(e)}") from None
    missing = [k for k in ("name", "sha256", "preprocessing") if not isinstance(card, dict) or k not in card]
    if missing:
        raise RecipeError(f"{path_text(path)}: card lacks {missing[0]!r}")
    if not isinstance(card["preprocessing"], dict):
        raise RecipeError(f"{path_text(path)}: preprocessing: expected a mapping")
    return card


def _check_file(path: Path, want, card_path: Path) -> None:
    if not path.is_file():
        raise RecipeError(f"{path}: missing (the card {card_path} describes it)")
    got = sha256(path)
    if got != want:
        raise RecipeError(f"{path}: SHA-256 {got[:12]}… does not match {CARD_FILE} ({str(want)[:12]}…); "
                          f"the file was changed or corrupted — restore it or re-publish the encoder")


def verify(folder) -> Dict:
    """Read the card and check ``encoder.keras`` (and ``denoise.keras``, the denoising decoder, where the card
    lists one) against its SHA-256; returns the card."""
    folder = Path(folder)
    card = read_card(folder)
    _check_file(folder / ENCODER_FILE, card["sha256"], folder / CARD_FILE)
    den = card.get("denoiser")
    if isinstance(den, dict):
        _check_file(folder / DENOISER_FILE, den.get("sha256"), folder / CARD_FILE)
    elif (folder / DENOISER_FILE).is_file():
        raise RecipeError(f"{folder / DENOISER_FILE}: not listed in {folder / CARD_FILE} (no `denoiser:` with its "
                          f"SHA-256) — remove it or re-publish the encoder")
    return card


# -- publishing a run's encoder ---------------------------------------------------------------------------------
def _source_license(root) -> str:
    """The license line(s) of the data folder's SOURCE.md, as stated there."""
    src = Path(root) / "SOURCE.md" if root else None
    if not src or not src.is_file():
        return "not stated (no SOURCE.md beside the data)"
    lines, keep = [], False
    for ln in src.read_text(encoding="utf-8").splitlines():
        if "license" in ln.lower():
            keep = True
        elif not (keep and ln.startswith("  ") and not ln.lstrip().startswith("-")):
            keep = False  # a license entry runs on over its indented continuation lines
        if keep:
            lines.append(ln.replace("*", "").strip().lstrip("- "))
    return " ".join(lines)[:600] or "not stated in SOURCE.md"


def _denoising(metrics: Dict) -> Dict:
    den = metrics.get("tasks", {}).get("denoise", {})
    split = "test" if "test" in den else "val"
    out = {}
    for level, v in den.get(split, {}).items():
        if isinstance(v, dict) and "noisy" in v:
            # nlm: the classical denoiser (OpenCV non-local means) on the same noisy images, where the run measured it
            out[level] = {f"{k}_{side}": round(float(v[side][k]), 4) for side in ("noisy", "denoised", "nlm")
                          if side in v for k in ("psnr", "ssim")}
    return {"split": split, "levels": out} if out else {}


def _data_name(root) -> str:
    """The data folder as a recipe would write it (``${UMSREP_DATA}/<set>`` for the shared data)."""
    from umsrep.paths import data_root

    if not root:
        return "synthetic"
    try:
        return "${UMSREP_DATA}/" + Path(root).resolve().relative_to(data_root().resolve()).as_posix()
    except ValueError:
        return str(root)


def _scalars(d: Dict) -> Dict:
    return {k: round(float(v), 4) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _images(metrics: Dict) -> Dict:
    first = next(iter(metrics.get("data", {}).get("sources", {}).values()), {})
    return {**{k: first[k] for k in ("images", "train", "val", "test") if k in first},
            "encoder_trained_on": "train split"}


def architecture_of(rep) -> dict:
    """The encoder's own settings (its ``representation`` fields that are not training settings): the section that
    builds the same architecture from scratch — the fair baseline for a reuse comparison."""
    from umsrep.settings import RepresentationSettings

    return {k: v for k, v in rep.model_dump(mode="json").items()
            if k == "kind" or k not in RepresentationSettings.model_fields}


def publish(run_dir, name: str, dest=None, description: str = "") -> Path:
    """Copy ``<run>/encoder`` into ``<dest>/<name>`` with a card (refuses an existing destination); the denoising
    decoder the encoder was trained with (``denoise.keras``) goes with it where the run saved one."""
    from umsrep import __version__
    from umsrep.recipe import load_recipe

    if not NAME_RE.match(name):
        raise RunDirError(f"pretrained name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    run = Path(run_dir)
    enc = run / "encoder"
    for f in (enc / ENCODER_FILE, enc / "preprocessing.json", run / "metrics.json", run / "recipe.yaml"):
        if not f.is_file():
            raise RunDirError(f"{f}: missing — publish needs a finished run (encoder, metrics.json, recipe.yaml)")
    out = Path(dest or pretrained_root()) / name
    if out.exists():
        raise RunDirError(f"{out}: already exists (remove it or choose another name)")
    recipe = load_recipe(run / "recipe.yaml")
    from umsrep.rundir import RunDir

    metrics = RunDir(run).read_json("metrics.json")
    pre = RunDir(enc).read_json("preprocessing.json")
    pre.pop("init_from", None)
    stage = metrics.get("stages", {}).get("representation", {})
    rep = recipe.representation
    # every other data set the encoder saw: pooled sets (data.pool), then representation.extra_data
    also = [_data_name(d.root) for d in [*recipe.data.parts()[1:], *recipe.extra_representation_data()]]
    card = {
        "card_version": CARD_VERSION, "name": name,
        "description": description or f"UMS-Rep {rep.kind} encoder for {recipe.modality}, trained by recipe "
                                      f"{recipe.name!r} ({rep.training})",
        "modality": recipe.modality,
        "preprocessing": pre,
        "architecture": architecture_of(rep),
        "training": {"how": rep.training, "task": stage.get("task"),
                     "data": _data_name(recipe.data.root), "images": _images(metrics),
                     **({"also": also} if also else {}),
                     "license": _source_license(recipe.data.root),
                     "recipe": recipe.name, "epochs_run": stage.get("epochs_run"),
                     "best_epoch": stage.get("best_epoch"), "wall_time_s": stage.get("wall_time_s")},
        "denoising": _denoising(metrics),
        **({"supervised_task_test": _scalars(metrics["tasks"].get(stage.get("task"), {}).get("test", {}))}
           if rep.training == "supervised" else {}),
        "parameters": metrics.get("parameters", {}).get("encoder"),  # counted by fit; no model load here
        "sha256": None, "size_bytes": None, "umsrep_version": __version__,
    }
    out.mkdir(parents=True)
    try:
        shutil.copy2(enc / ENCODER_FILE, out / ENCODER_FILE)
        card["sha256"] = sha256(out / ENCODER_FILE)
        card["size_bytes"] = (out / ENCODER_FILE).stat().st_size
        if (enc / DENOISER_FILE).is_file():  # image -> denoised image with the encoder (the baseline's input)
            shutil.copy2(enc / DENOISER_FILE, out / DENOISER_FILE)
            card["denoiser"] = {"file": DENOISER_FILE, "decoder": getattr(rep, "decoder", None),
                                "sha256": sha256(out / DENOISER_FILE),
                                "size_bytes": (out / DENOISER_FILE).stat().st_size}
        write_text(out / CARD_FILE, yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out
