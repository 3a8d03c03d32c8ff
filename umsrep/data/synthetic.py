"""Embedded default data set: synthetic breast-ultrasound-like images (no download needed).

``make_ultrasound_dataset`` writes an ordinary image/mask/labels folder, so the regular readers load it::

    out_dir/images/<class>_<NNN>.png   uint8 grayscale, size x size
    out_dir/masks/<class>_<NNN>.png    uint8 lesion mask, 0 / 255 (all 0 for ``normal``)
    out_dir/labels.csv                 filename,label,patient
    out_dir/manifest.json              generation parameters (written last: marks a complete set)

Classes follow BUSI: ``benign``, ``malignant``, ``normal``. How an image is made:

1. a tissue echogenicity map: dark coupling gel, bright skin line, hypoechoic subcutaneous fat with
   Cooper's ligaments, a bright fascia, heterogeneous fibroglandular tissue with a few small glandular
   layers / fat lobules, retromammary fat and striated pectoralis muscle at depth;
2. a lesion: ``benign`` = smooth, wider-than-tall oval, mildly hypoechoic, thin echogenic capsule,
   posterior acoustic enhancement and thin edge shadows; ``malignant`` = irregular / spiculated outline
   (radius modulated by several random harmonics), markedly hypoechoic and heterogeneous,
   taller-than-wide tendency, echogenic halo, posterior acoustic shadowing; ``normal`` = no lesion;
3. fully developed speckle: complex gaussian scatterers weighted by the echogenicity, smoothed by an
   anisotropic point-spread function (sharper axially than laterally), magnitude -> Rayleigh envelope;
4. depth attenuation with an imperfect time-gain compensation curve, then log compression to uint8.

Everything is deterministic from ``seed``: one numpy Generator per patient and per image.
Images of one patient share anatomy and lesion (two "views"), so patient-level splits matter.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from umsrep.errors import RecipeError
from umsrep.io import write_json, write_text

CLASSES: Tuple[str, ...] = ("benign", "malignant", "normal")
GENERATOR = "umsrep.data.synthetic.make_ultrasound_dataset"
GENERATOR_VERSION = 1

# Lesion area as a fraction of the image, before and after per-view jitter.
_AREA_RANGE = (0.045, 0.15)
_AREA_CLIP = (0.035, 0.185)

_F32 = np.float32


# ----------------------------------------------------------------------------- small helpers


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    ys = np.arange(size, dtype=_F32)[:, None]
    xs = np.arange(size, dtype=_F32)[None, :]
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


@functools.lru_cache(maxsize=8)
def _unit(size: int) -> np.ndarray:
    u = np.linspace(0.0, 1.0, size, dtype=_F32)
    u.flags.writeable = False
    return u


def _lowfreq(rng: np.random.Generator, size: int, gy: int, gx: int) -> np.ndarray:
    """Smooth zero-mean noise field, unit-ish variance; (gy, gx) coarse cells -> size x size."""
    coarse = rng.standard_normal((gy, gx)).astype(_F32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _curve(rng: np.random.Generator, size: int, base: float, amp: float) -> np.ndarray:
    """A gently wavy horizontal boundary, in pixels, one value per column."""
    x = _unit(size)
    y = np.full(size, base, dtype=_F32)
    for k in (1.0, 2.3):
        y += amp / k * np.sin(2 * np.pi * (k * rng.uniform(0.4, 1.0) * x + rng.uniform()))
    return y * size


def _gauss(img: np.ndarray, sy: float, sx: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(sx, 0.01), sigmaY=max(sy, 0.01),
                            borderType=cv2.BORDER_REFLECT)


def _poly_points(pts: np.ndarray) -> np.ndarray:
    """Float (N, 2) xy -> int32 points with 4 fractional bits for cv2 drawing (shift=4)."""
    return np.round(pts * 16.0).astype(np.int32).reshape(-1, 1, 2)


# ----------------------------------------------------------------------------- anatomy


def _patient_anatomy(rng: np.random.Generator) -> Dict:
    return {
        "gel": rng.uniform(0.0, 0.03),
        "skin": rng.uniform(0.025, 0.04),
        "fascia": rng.uniform(0.15, 0.27),
        "deep": rng.uniform(0.72, 0.86),
        "muscle_gap": rng.uniform(0.03, 0.07),
        "fat_level": rng.uniform(0.07, 0.15),
        "gland_level": rng.uniform(0.7, 1.3),
        "gland_contrast": rng.uniform(0.5, 0.8),
        "skin_level": rng.uniform(6.0, 12.0),
        "atten": rng.uniform(2.5, 4.0),  # amplitude attenuation over the full depth (nepers)
        "tgc": rng.uniform(0.5, 0.8),  # fraction of it the time-gain curve gives back
        "dyn_range": rng.uniform(44.0, 52.0),  # dB mapped onto 0..255
        "top_db": rng.uniform(20.0, 24.0),  # echo level (dB re. glandular tissue) shown as white
    }


def _tissue(rng: np.random.Generator, size: int, a: Dict) -> np.ndarray:
    """Echogenicity (linear backscatter power, ~1 for glandular tissue) without a lesion."""
    s = size
    ys, xs = _grid(s)
    scale = s / 64.0
    gel = _curve(rng, s, a["gel"], 0.004)
    skin_top = gel + a["skin"] * 0.5 * s
    skin_bot = skin_top + max(1.0, 0.022 * s)
    fascia = _curve(rng, s, a["fascia"], 0.035)
    deep = np.maximum(_curve(rng, s, a["deep"], 0.04), fascia + 0.3 * s)
    muscle = deep + a["muscle_gap"] * s

    # subcutaneous fat: hypoechoic, lobulated
    fat = a["fat_level"] * np.exp(0.35 * _lowfreq(rng, s, 4, 6))
    # fibroglandular tissue: heterogeneous, structures elongated parallel to the skin
    gland = a["gland_level"] * np.exp(a["gland_contrast"] * (
        0.8 * _lowfreq(rng, s, 9, 4) + 0.5 * _lowfreq(rng, s, 18, 7)))
    # pectoralis: striated
    phase = 2.0 * _lowfreq(rng, s, 3, 3)
    muscle_tex = 0.3 * (1.0 + 0.8 * np.sin(ys * (0.9 / scale) + phase))
    retro = 0.12 * np.exp(0.3 * _lowfreq(rng, s, 3, 5))

    t = np.where(ys < deep[None, :], gland, retro)
    t = np.where(ys < fascia[None, :], fat, t)
    t = np.where(ys >= muscle[None, :], muscle_tex, t).astype(_F32)
    t = np.where(ys < skin_bot[None, :], a["skin_level"], t)
    t = np.where(ys < gel[None, :], 0.01, t).astype(_F32)
    # bright fascia lines (superficial fascia and the retromammary fascia)
    w = max(0.7, 0.9 * scale)
    t += 3.0 * np.exp(-(((ys - fascia[None, :]) / w) ** 2))
    t += 2.0 * np.exp(-(((ys - muscle[None, :]) / w) ** 2))

    # Cooper's ligaments: thin bright oblique curves through the fat
    skin_mid, fascia_mid, deep_mid = float(skin_bot.mean()), float(fascia.mean()), float(deep.mean())
    lig = np.zeros((s, s), _F32)
    for _ in range(int(rng.integers(2, 5))):
        x0 = rng.uniform(0, s)
        dx = rng.uniform(-0.35, 0.35) * s
        y0, y1 = skin_mid, fascia_mid
        n = 8
        tt = np.linspace(0, 1, n)
        px = x0 + dx * tt + rng.normal(0, 0.02 * s, n)
        py = y0 + (y1 - y0) * tt
        cv2.polylines(lig, [_poly_points(np.stack([px, py], 1))], False, 1.0,
                      thickness=1, lineType=cv2.LINE_AA, shift=4)
    t += 2.5 * lig * (ys < fascia[None, :])

    # a few small glandular layers / ducts (bright) and fat lobules (dark) inside the gland
    layers = np.zeros((s, s), _F32)
    for _ in range(int(rng.integers(2, 6))):
        cx = rng.uniform(0.1, 0.9) * s
        cy = rng.uniform(fascia_mid + 0.05 * s, deep_mid - 0.03 * s)
        ax = rng.uniform(0.06, 0.16) * s
        ay = rng.uniform(0.012, 0.035) * s
        val = rng.choice([-1.2, 0.9])
        cv2.ellipse(layers, ((cx, cy), (2 * ax, 2 * ay), rng.uniform(-12, 12)), float(val), -1,
                    lineType=cv2.LINE_AA)
    layers = _gauss(layers, 0.6 * scale, 1.0 * scale)
    t *= np.exp(layers) * (ys >= fascia[None, :]) + (ys < fascia[None, :])
    return _gauss(t.astype(_F32), 0.35 * scale, 0.5 * scale)


# ----------------------------------------------------------------------------- lesions


def _patient_lesion(rng: np.random.Generator, cls: str) -> Optional[Dict]:
    if cls == "normal":
        return None
    if cls == "benign":
        aspect = rng.uniform(0.5, 0.8)  # height / width: wider than tall, parallel to the skin
        harm = [(k, rng.uniform(0.0, 0.035), rng.uniform(0, 2 * np.pi)) for k in (2, 3)]
        if rng.uniform() < 0.4:  # gentle macrolobulation
            harm.append((int(rng.integers(3, 5)), rng.uniform(0.03, 0.06), rng.uniform(0, 2 * np.pi)))
        return {
            "spikes": [],
            "aspect": aspect,
            "rot": rng.uniform(-18, 18),
            "harm": harm,
            "area": rng.uniform(*_AREA_RANGE),
            "level": rng.uniform(0.035, 0.09),
            "texture": 0.25,
            "edge": 0.35,
            "rim": rng.uniform(1.0, 2.5),
            "posterior": rng.uniform(2.0, 4.0),  # enhancement
        }
    aspect = rng.uniform(0.85, 1.5)  # taller than wide tendency
    harm = [(k, rng.uniform(0.04, 0.12), rng.uniform(0, 2 * np.pi)) for k in rng.choice(
        np.arange(3, 9), size=int(rng.integers(3, 5)), replace=False)]
    harm += [(k, rng.uniform(0.01, 0.035), rng.uniform(0, 2 * np.pi)) for k in rng.choice(
        np.arange(11, 22), size=int(rng.integers(2, 4)), replace=False)]
    n_sp = int(rng.integers(4, 10))
    spikes = list(zip(rng.uniform(0, 2 * np.pi, n_sp), rng.uniform(0.12, 0.4, n_sp),
                      rng.uniform(0.04, 0.1, n_sp)))
    return {
        "spikes": spikes,
        "aspect": aspect,
        "rot": rng.uniform(-25, 25),
        "harm": harm,
        "area": rng.uniform(*_AREA_RANGE),
        "level": rng.uniform(0.004, 0.014),
        "texture": 0.5,
        "edge": 0.5,
        "rim": rng.uniform(0.8, 2.0),  # echogenic halo
        "posterior": rng.uniform(0.85, 0.95),  # shadow strength
        "spicules": int(rng.integers(3, 8)),
    }


def _lesion_outline(rng: np.random.Generator, size: int, les: Dict, top: float) -> np.ndarray:
    """Polygon (N, 2) in pixel xy for one view of the patient's lesion."""
    n = 256
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k, amp, ph in les["harm"]:
        r += amp * rng.uniform(0.8, 1.2) * np.cos(k * th + ph + rng.normal(0, 0.15))
    for at, amp, w in les["spikes"]:  # sharp, irregularly spaced spiculations
        dth = np.angle(np.exp(1j * (th - at - rng.normal(0, 0.05))))
        r += amp * rng.uniform(0.7, 1.3) * np.exp(-np.abs(dth) / w)
    r = np.maximum(r, 0.35)
    aspect = les["aspect"] * rng.uniform(0.9, 1.1)
    x = r * np.cos(th)
    y = r * np.sin(th) * aspect
    rot = np.deg2rad(les["rot"] + rng.normal(0, 6))
    c, s_ = np.cos(rot), np.sin(rot)
    x, y = c * x - s_ * y, s_ * x + c * y
    # scale to the target area (shoelace area of the unit polygon)
    area0 = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    frac = float(np.clip(les["area"] * rng.uniform(0.85, 1.15), *_AREA_CLIP))
    k = math.sqrt(frac * size * size / area0)
    x, y = x * k, y * k
    # place it: inside the image laterally, below the subcutaneous fat, above the bottom
    margin = 0.03 * size
    lo_x, hi_x = margin - x.min(), size - margin - x.max()
    lo_y, hi_y = top - y.min(), 0.93 * size - y.max()
    if hi_y < lo_y:  # very tall lesion: allow it to reach a little higher
        lo_y = min(lo_y, 0.1 * size - y.min())
        hi_y = max(lo_y, hi_y)
    cx = rng.uniform(lo_x, max(lo_x, hi_x))
    cy = rng.uniform(lo_y, max(lo_y, hi_y))
    return np.stack([x + cx, y + cy], 1)


def _add_lesion(rng, t: np.ndarray, les: Dict, cls: str, poly: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    s = t.shape[0]
    scale = s / 64.0
    ys, xs = _grid(s)
    pts = _poly_points(poly)
    mask = np.zeros((s, s), np.uint8)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8, shift=4)
    # the echo-poor region reaches a little past the mask so that PSF leakage from the bright
    # surroundings does not make the visible lesion smaller than its mask
    c0 = poly.mean(0)
    rad = np.linalg.norm(poly - c0, axis=1, keepdims=True)
    grow = (0.4 if cls == "benign" else 0.8) * scale
    soft = np.zeros((s, s), _F32)
    cv2.fillPoly(soft, [_poly_points(c0 + (poly - c0) * (1 + grow / np.maximum(rad, 1e-3)))], 1.0,
                 lineType=cv2.LINE_AA, shift=4)
    soft = _gauss(soft, les["edge"] * scale, les["edge"] * scale)

    # interior echogenicity (absolute level; malignant ones heterogeneous)
    inner = les["level"] * np.exp(les["texture"] * _lowfreq(rng, s, 8, 8))
    if cls == "malignant":  # a few bright microcalcification-like dots
        for _ in range(int(rng.integers(0, 4))):
            j = int(rng.integers(len(poly)))
            p = poly.mean(0) + rng.uniform(0.1, 0.6) * (poly[j] - poly.mean(0))
            cv2.circle(inner, (int(p[0]), int(p[1])), 0, 1.5, -1)

    # halo / capsule: a ring just outside the boundary
    ring_w = (0.6 if cls == "benign" else 1.6) * scale
    ring = np.clip(_gauss(soft, ring_w, ring_w) - soft, 0, None)
    ring /= max(float(ring.max()), 1e-6)

    # posterior acoustic feature: columns below the lesion, fading with depth
    colmask = mask > 0
    has = colmask.any(0)
    bottom = np.where(has, s - 1 - np.argmax(colmask[::-1], 0), -1).astype(_F32)
    below = (ys > bottom[None, :]) & has[None, :]
    depth = np.clip(ys - bottom[None, :], 0, None)
    fade = np.exp(-depth / ((0.7 if cls == "benign" else 1.5) * s))
    post = _gauss((below * fade).astype(_F32), 0.5 * scale, 1.2 * scale)

    t = t * (1 - soft) + inner * soft
    t = t * (1 + les["rim"] * ring)
    if cls == "benign":
        t = t * (1 + les["posterior"] * post)
        # thin refraction shadows from the lateral edges
        cols = np.nonzero(has)[0]
        cy = float(poly[:, 1].mean())
        edge = np.zeros(s, _F32)
        for xe in (cols[0], cols[-1]):
            edge = np.maximum(edge, np.exp(-(((np.arange(s) - xe) / (0.9 * scale)) ** 2)))
        t = t * (1 - 0.6 * edge[None, :] * (ys > cy))
    else:
        t = t * (1 - les["posterior"] * post)
        # spicules: thin dark straight extensions radiating from the boundary
        spic = np.zeros((s, s), _F32)
        for _ in range(les["spicules"]):
            j = int(rng.integers(len(poly)))
            d = poly[j] - c0
            d /= max(np.linalg.norm(d), 1e-6)
            p1 = poly[j] + d * rng.uniform(0.05, 0.14) * s
            cv2.line(spic, tuple(int(v) for v in poly[j] * 16), tuple(int(v) for v in p1 * 16),
                     1.0, 1, cv2.LINE_AA, shift=4)
        t = t * (1 - 0.7 * np.clip(spic, 0, 1))
    return t.astype(_F32), mask


# ----------------------------------------------------------------------------- imaging


def _image(rng: np.random.Generator, t: np.ndarray, a: Dict, compound: int = 2) -> np.ndarray:
    """Echogenicity -> B-mode uint8: speckle, PSF, compounding, attenuation / TGC, log compression."""
    s = t.shape[0]
    scale = s / 64.0
    amp = np.sqrt(np.maximum(t, 0)).astype(_F32)
    sy, sx = 0.45 + 0.25 * scale, 0.8 + 0.55 * scale  # PSF: sharper axially than laterally
    norm = _F32(4.0 * np.pi * sy * sx)  # white noise through this PSF has variance 1 / norm
    inten = np.zeros((s, s), _F32)
    for _ in range(compound):  # spatial compounding: average independent speckle patterns
        re = _gauss(amp * rng.standard_normal((s, s), dtype=_F32), sy, sx)
        im = _gauss(amp * rng.standard_normal((s, s), dtype=_F32), sy, sx)
        inten += re * re + im * im
    inten *= norm / compound  # mean intensity == echogenicity
    inten = _gauss(inten, 0.5, 0.5)  # a little incoherent smoothing, as scanners do

    d = _unit(s)[:, None]
    wiggle = 0.1 * np.sin(2 * np.pi * (d * rng.uniform(0.8, 1.6) + rng.uniform()))
    log_gain = -2.0 * a["atten"] * (1 - a["tgc"]) * d + 2.0 * wiggle  # natural log of power gain
    x = 2.0 * _unit(s)[None, :] - 1.0
    db = (10.0 / np.log(10.0)) * (np.log(inten + 1e-9) + log_gain + np.log1p(-0.3 * x ** 4))
    top = a["top_db"] + rng.uniform(-1.5, 1.5)
    dr = a["dyn_range"]
    out = np.clip((db - (top - dr)) / dr, 0.0, 1.0) ** 1.3
    return np.round(out * 255.0).astype(np.uint8)


def _render(seed: int, size: int, patient: int, view: int, cls: str) -> Tuple[np.ndarray, np.ndarray]:
    prng = np.random.default_rng([seed, patient, 0x5EED])
    anat = _patient_anatomy(prng)
    les = _patient_lesion(prng, cls)
    vrng = np.random.default_rng([seed, patient, view, 0x1])
    t = _tissue(vrng, size, anat)
    mask = np.zeros((size, size), np.uint8)
    if les is not None:
        top = (anat["gel"] + anat["skin"] + 0.08) * size
        poly = _lesion_outline(vrng, size, les, top)
        t, mask = _add_lesion(vrng, t, les, cls, poly)
    return _image(vrng, t, anat), mask


# ----------------------------------------------------------------------------- data set


def _plan(n: int, per_patient: int) -> List[Tuple[str, int, int, str, int]]:
    """(class, index within class, patient number, patient id, view) per image."""
    counts = [n // 3 + (k < n % 3) for k in range(3)]
    per_class: List[List[List[int]]] = []
    for k, c in enumerate(counts):
        idx = list(range(c))
        per_class.append([idx[i:i + per_patient] for i in range(0, c, per_patient)])
    # interleave patients of the three classes so that patient ids do not sort by class
    order: List[Tuple[int, List[int]]] = []
    for j in range(max(len(p) for p in per_class)):
        for k in range(3):
            if j < len(per_class[k]):
                order.append((k, per_class[k][j]))
    n_pat = len(order)
    pw = max(3, len(str(n_pat - 1)))
    iw = max(3, len(str(max(counts) - 1)))
    plan = []
    for p, (k, idxs) in enumerate(order):
        for view, i in enumerate(idxs):
            plan.append((CLASSES[k], i, p, f"p{p:0{pw}d}", view, f"{CLASSES[k]}_{i:0{iw}d}.png"))
    return plan


def is_complete(out: Path, params: Dict, generator: str, version: int) -> bool:
    """True when ``out`` holds a finished generation by ``generator``/``version`` with exactly ``params`` (its
    manifest says so and every file labels.csv lists exists). Shared by the embedded generators."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("params") != params:
        return False
    if manifest.get("generator") != generator or manifest.get("version") != version:
        return False
    try:
        with open(out / "labels.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return len(rows) == params["n"] and all(
            (out / "images" / r["filename"]).is_file() and (out / "masks" / r["filename"]).is_file() for r in rows)
    except (OSError, KeyError, TypeError):  # missing or damaged labels.csv
        return False


def start_generation(out: Path, wanted, prefixes) -> Tuple[Path, Path]:
    """Make ``out/images`` and ``out/masks``, mark ``out`` incomplete (no manifest until the end) and remove
    ``<prefix>_<n>.png`` files of an earlier, different generation that ``wanted`` does not name."""
    img_dir, mask_dir = out / "images", out / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    stale = re.compile(r"^(%s)_\d+\.png$" % "|".join(map(re.escape, prefixes)))
    for d in (img_dir, mask_dir):
        for p in d.iterdir():
            if stale.match(p.name) and p.name not in wanted:
                p.unlink()
    return img_dir, mask_dir


def make_ultrasound_dataset(out_dir, n: int = 240, size: int = 64, seed: int = 0, per_patient: int = 2) -> Path:
    """Write (or reuse) the synthetic breast-ultrasound data set under ``out_dir``; return its path.

    Idempotent: if ``out_dir/manifest.json`` already records identical parameters (and the files it
    lists exist), nothing is regenerated.
    """
    for name, v, lo in (("n", n, 1), ("size", size, 16), ("per_patient", per_patient, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise RecipeError(f"synthetic data: {name} must be an integer >= {lo}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RecipeError(f"synthetic data: seed must be a non-negative integer, got {seed!r}")
    n, size, seed, per_patient = int(n), int(size), int(seed), int(per_patient)
    out = Path(out_dir)
    params = {"n": n, "size": size, "seed": seed, "per_patient": per_patient}
    if is_complete(out, params, GENERATOR, GENERATOR_VERSION):
        return out
    plan = _plan(n, per_patient)
    img_dir, mask_dir = start_generation(out, {row[5] for row in plan}, CLASSES)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["filename", "label", "patient"])
    counts = {c: 0 for c in CLASSES}
    for cls, _i, p, pid, view, fname in plan:
        img, mask = _render(seed, size, p, view, cls)
        if not (cv2.imwrite(str(img_dir / fname), img) and cv2.imwrite(str(mask_dir / fname), mask)):
            raise OSError(f"could not write {img_dir / fname}")
        w.writerow([fname, cls, pid])
        counts[cls] += 1
    write_text(out / "labels.csv", buf.getvalue())
    write_json(out / "manifest.json", {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "params": params,
        "classes": list(CLASSES),
        "counts": counts,
        "patients": len({row[3] for row in plan}),
        "layout": {"images": "images/", "masks": "masks/", "labels": "labels.csv",
                   "columns": ["filename", "label", "patient"]},
    })
    return out


__all__ = ["CLASSES", "make_ultrasound_dataset"]
