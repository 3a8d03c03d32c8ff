"""Simulated spectral Doppler echocardiography images with ground truth (no public data set is available).

``make_doppler_dataset`` writes an ordinary image/mask/labels folder that the regular readers load::

    out_dir/images/<flow>_<NNN>.png   uint8 grayscale spectral display, size x size
    out_dir/masks/<flow>_<NNN>.png    uint8 0 / 255: the spectrum between the baseline and the velocity envelope
    out_dir/labels.csv                filename,flow,quality,label,flow_quality  (label = flow;
                                      flow_quality = "<flow>_<quality>", e.g. "TR_low", one column for both)
    out_dir/manifest.json             generation parameters (written last: marks a complete set)

A display is velocity (rows; up = toward the transducer) against time (columns). Three flow kinds:

- ``MV`` mitral inflow (pulsed wave): diastolic E and A waves above the baseline, E 45-120 cm/s, E/A 0.6-2.4,
  E deceleration time 130-240 ms; E and A fuse at high heart rates;
- ``MA`` mitral annulus tissue Doppler: s' (6-14 cm/s) above the baseline in systole, e' (6-18 cm/s) and a'
  (4-13 cm/s) below it in diastole, on a small velocity scale;
- ``TR`` tricuspid regurgitation (continuous wave): a holosystolic jet below the baseline, 200-450 cm/s,
  rounded (sine-power) profile, often with faint diastolic tricuspid inflow (E 25-55, A <= 60 cm/s) above
  the baseline.

Each image draws a heart rate (50-110 bpm, 3 % beat-to-beat RR jitter, 4 % peak jitter), a sweep (1.2-3.0 s
across the display, so 1-5.5 beats), a baseline position, a velocity scale that fits the peaks with a
10-50 % margin, gain and display compression. See ``docs/doppler.md`` for the equations.

Image quality ``good`` or ``low``; a ``low`` image gets one or two degradations (:data:`DEGRADATIONS`):
``weak`` (gain 0.06-0.2x, noise 1.5-3x), ``clutter`` (a strong wall-filter band about the baseline),
``clipping`` (scale too small: the spectrum is cut at the display edge and saturated by 1.6-3x gain),
``aliasing`` (scale too small: velocities beyond the Nyquist limit wrap to the other side of the baseline).

Mask: a pixel of a spectrum column belongs to the mask when its velocity -- or, with ``aliasing``, one of its
aliases (velocity +- the displayed span) -- lies between zero and that column's envelope velocity (half a pixel
of rounding). So the mask is the flow signal *as displayed*: cut at the edge when clipped, and in two parts
(baseline to edge, opposite edge to the wrapped tip) when aliased. Clutter, valve clicks, baseline, tick marks
and noise are never in the mask.

Everything is deterministic from ``seed``: one numpy Generator per image.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from umsrep.data.synthetic import is_complete, start_generation
from umsrep.errors import RecipeError
from umsrep.io import write_json, write_text

FLOWS: Tuple[str, ...] = ("MV", "MA", "TR")
QUALITIES: Tuple[str, ...] = ("good", "low")
DEGRADATIONS: Tuple[str, ...] = ("weak", "clutter", "clipping", "aliasing")
COLUMNS: Tuple[str, ...] = ("filename", "flow", "quality", "label", "flow_quality")
GENERATOR = "umsrep.data.doppler.make_doppler_dataset"
GENERATOR_VERSION = 1

_F32 = np.float32
# baseline row as a fraction of the height (from the top), per flow
_BASELINE = {"MV": (0.62, 0.85), "MA": (0.40, 0.62), "TR": (0.12, 0.33)}
# spectral shape: modal velocity / envelope, broadening (Gaussian SD / envelope), fill level under the envelope
_SPECTRUM = {"MV": ((0.55, 0.85), (0.12, 0.35), (0.15, 0.45)),
             "MA": ((0.65, 0.90), (0.10, 0.25), (0.35, 0.70)),
             "TR": ((0.55, 0.90), (0.15, 0.40), (0.30, 0.60))}


def _as_rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


# ----------------------------------------------------------------------------- velocity envelopes


def _wave(t: np.ndarray, onset: float, dur: float, up: float, q: float) -> np.ndarray:
    """A unit hump on [onset, onset + dur], peaking at fraction ``up`` of it: sin(pi g(u)) ** q, g piecewise
    linear with g(up) = 1/2 (q < 1: steep sides and a rounded top; q > 1: a pointed, triangular top)."""
    u = (t - onset) / dur
    g = np.where(u < up, 0.5 * u / up, 0.5 + 0.5 * (u - up) / (1.0 - up))
    return np.where((u > 0) & (u < 1), np.sin(np.pi * np.clip(g, 0.0, 1.0)) ** q, 0.0)


def _systole(rr: float) -> float:
    """Ejection time (s) for an RR interval (s): ~0.34 s at 60 bpm, shorter at faster rates."""
    return 0.28 * math.sqrt(rr) + 0.06


def _flow_params(rng: np.random.Generator, flow: str) -> Dict:
    u = rng.uniform
    if flow == "MV":
        e = u(45.0, 120.0)
        ea = u(0.6, 2.4)
        return {"E": e, "E_over_A": ea, "A": float(np.clip(e / ea, 25.0, 110.0)), "ivrt": u(0.06, 0.10),
                "e_rise": u(0.07, 0.10), "decel": u(0.13, 0.24), "a_dur": u(0.09, 0.14), "q_e": u(0.8, 1.3),
                "q_a": u(0.8, 1.3), "a_up": u(0.4, 0.55)}
    if flow == "MA":
        return {"s": u(6.0, 14.0), "e": u(6.0, 18.0), "a": u(4.0, 13.0), "s_up": u(0.25, 0.4), "q": u(0.6, 0.9),
                "ivrt": u(0.04, 0.08), "e_dur": u(0.10, 0.16), "a_dur": u(0.08, 0.12)}
    if flow == "TR":
        inflow = u() < 0.75
        e = u(25.0, 55.0)
        return {"peak": u(200.0, 450.0), "delay": u(0.0, 0.03), "extra": u(0.08, 0.13), "up": u(0.38, 0.55),
                "q": u(0.45, 0.8), "inflow": inflow, "E": e if inflow else 0.0,
                "A": min(e / u(0.7, 1.8), 60.0) if inflow else 0.0, "e_dur": u(0.16, 0.26), "a_dur": u(0.09, 0.13)}
    raise ValueError(f"unknown flow {flow!r}; expected one of {FLOWS}")


def _beat_waves(flow: str, p: Dict, t0: float, rr: float, k: float) -> List[Tuple[float, float, float, float, float]]:
    """(onset, duration, peak fraction, shape power, signed peak cm/s) of the waves of one beat (QRS at t0)."""
    ts = _systole(rr)
    fast = float(np.clip(rr / 0.9, 0.65, 1.0))  # diastolic events shorten at high heart rates
    if flow == "MV":
        rise, decel = p["e_rise"] * fast, p["decel"] * fast
        return [(t0 + 0.05 + ts + p["ivrt"] * fast, rise + decel, rise / (rise + decel), p["q_e"], k * p["E"]),
                (t0 + rr - p["a_dur"] + 0.015, p["a_dur"], p["a_up"], p["q_a"], k * p["A"])]
    if flow == "MA":
        return [(t0 + 0.06, ts * 0.95, p["s_up"], p["q"], k * p["s"]),
                (t0 + 0.05 + ts + p["ivrt"] * fast, p["e_dur"] * fast, 0.4, 0.9, -k * p["e"]),
                (t0 + rr - p["a_dur"] + 0.01, p["a_dur"], 0.45, 0.9, -k * p["a"])]
    dur = ts + p["extra"]
    waves = [(t0 + p["delay"], dur, p["up"], p["q"], -k * p["peak"])]
    if p["inflow"]:
        waves += [(t0 + p["delay"] + dur + 0.04, p["e_dur"] * fast, 0.4, 1.0, k * p["E"]),
                  (t0 + rr - p["a_dur"] + 0.01, p["a_dur"], 0.45, 1.0, k * p["A"])]
    return waves


def envelope(rng: np.random.Generator, flow: str, t: np.ndarray, hr: float) -> Tuple[np.ndarray, Dict]:
    """Signed envelope velocity (cm/s, + = toward the transducer) at times ``t`` (s), and the flow parameters.

    Beats (QRS onsets) start before ``t[0]`` so that the display opens mid-cycle; each beat jitters its RR
    interval (SD 3 %) and its peaks (SD 4 %). Overlapping waves of one sign fuse by their maximum."""
    p = _flow_params(rng, flow)
    rr0 = 60.0 / hr
    pos = np.zeros_like(t)
    neg = np.zeros_like(t)
    t0 = float(t[0]) - rr0 * rng.uniform(1.0, 2.0)
    while t0 < t[-1]:
        rr = rr0 * float(np.clip(1.0 + rng.normal(0.0, 0.03), 0.9, 1.1))
        k = float(np.clip(1.0 + rng.normal(0.0, 0.04), 0.88, 1.12))
        for onset, dur, up, q, peak in _beat_waves(flow, p, t0, rr, k):
            w = peak * _wave(t, onset, dur, up, q)
            if peak >= 0:
                pos = np.maximum(pos, w)
            else:
                neg = np.minimum(neg, w)
        t0 += rr
    return np.where(pos >= -neg, pos, neg), p


# ----------------------------------------------------------------------------- rendering


def _alias_shifts(degradations: Sequence[str]) -> Tuple[int, ...]:
    return (-1, 0, 1) if "aliasing" in degradations else (0,)


def doppler_mask(v_rows: np.ndarray, vel: np.ndarray, span: float, aliasing: bool) -> np.ndarray:
    """Mask (rows x columns, bool) of the flow as displayed: pixel rows of velocity ``v_rows`` (cm/s, one per row)
    whose velocity, or with ``aliasing`` one of its aliases (+- ``span``), is between 0 and the column's envelope
    ``vel`` (cm/s; NaN = no spectrum in that column), with half a pixel of rounding."""
    px = span / len(v_rows)
    e = np.nan_to_num(np.asarray(vel, np.float64), nan=0.0)[None, :]
    sign = np.where(e >= 0, 1.0, -1.0)
    mag = np.abs(e) + 0.5 * px
    out = np.zeros((len(v_rows), e.shape[1]), bool)
    for k in ((-1, 0, 1) if aliasing else (0,)):
        u = sign * (v_rows[:, None] + k * span)
        out |= (u > 0) & (u <= mag)
    return out & (np.abs(e) > 0)


def _spectrum(u: np.ndarray, e: np.ndarray, modal: np.ndarray, sigma: np.ndarray, fill: float,
              px: float) -> np.ndarray:
    """Spectral power at signed velocity ``u`` (rows x cols) for envelopes ``e``: brightest at the modal velocity,
    ``fill`` down to the baseline, fading toward the envelope and dropping within a pixel beyond it."""
    sign = np.where(e >= 0, 1.0, -1.0)
    ue, ee = u * sign, np.abs(e)
    inside = fill + (1.0 - fill) * np.exp(-0.5 * ((ue - modal) / sigma) ** 2)
    at_e = fill + (1.0 - fill) * np.exp(-0.5 * ((ee - modal) / sigma) ** 2)
    beyond = at_e * np.exp(-(((ue - ee) / (0.45 * px)) ** 2))
    val = np.where(ue <= ee, inside, beyond)
    return np.where((ue > 0) & (ee > 0.5 * px), val, 0.0)


def _nice_step(span: float) -> float:
    for m in (1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0):
        if span / m <= 10:
            return m
    return 1000.0


def _pick_degradations(rng: np.random.Generator) -> Tuple[str, ...]:
    first = str(rng.choice(DEGRADATIONS))
    out = [first]
    if rng.uniform() < 0.3:
        others = [d for d in DEGRADATIONS if d != first and {d, first} != {"clipping", "aliasing"}]
        out.append(str(rng.choice(others)))
    return tuple(d for d in DEGRADATIONS if d in out)


def render_doppler(seed_or_rng, flow: str = "MV", quality: str = "good", size: int = 128,
                   degradations: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, np.ndarray, Dict]:
    """One spectral Doppler display -> (image float32 in [0, 1], mask uint8 0/1, info), all ``size`` x ``size``.

    ``degradations`` (``low`` only): the degradations to apply; None draws one or two at random for ``low``.
    ``info``: ``flow``, ``quality``, ``degradations``, ``hr_bpm``, ``sweep_s``, ``n_beats``, ``baseline_row``,
    ``scale_cm_s`` (displayed span), ``cm_s_per_px``, ``v_top`` / ``v_bottom`` (cm/s at the top / bottom row),
    ``columns`` ([first, end) of the spectrum columns; the rest is the tick-mark strip), ``velocity`` (signed
    envelope cm/s per column, NaN in the strip), ``envelope_rows`` (row of the true envelope, may lie outside the
    image when clipped or aliased), ``beyond_scale`` (columns whose envelope exceeds the displayed range),
    ``peak_cm_s`` (signed velocity of largest magnitude), ``params`` (flow parameters).
    """
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; expected one of {FLOWS}")
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; expected one of {QUALITIES}")
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    rng = _as_rng(seed_or_rng)
    if degradations is None:
        degradations = _pick_degradations(rng) if quality == "low" else ()
    degradations = tuple(degradations)
    bad = [d for d in degradations if d not in DEGRADATIONS]
    if bad:
        raise ValueError(f"unknown degradation {bad[0]!r}; expected some of {DEGRADATIONS}")
    if quality == "good" and degradations:
        raise ValueError("a good-quality image has no degradations")
    if quality == "low" and not degradations:
        raise ValueError("a low-quality image needs at least one degradation")
    if {"clipping", "aliasing"} <= set(degradations):
        raise ValueError("clipping and aliasing exclude each other (both set the velocity scale)")
    s = size

    # time axis: tick strip on one side, spectrum columns on the other
    strip = max(4, int(round(0.07 * s)))
    left_strip = bool(rng.uniform() < 0.3)
    c0, c1 = (strip, s) if left_strip else (0, s - strip)
    w = c1 - c0
    hr = rng.uniform(50.0, 110.0)
    sweep = rng.uniform(1.2, 3.0)
    t = (np.arange(w) + 0.5) / w * sweep
    vel, params = envelope(rng, flow, t, hr)

    # velocity scale and baseline: fit the peaks with a margin, or (clipping / aliasing) cut the larger one
    b_frac = rng.uniform(*_BASELINE[flow])
    pos_peak, neg_peak = float(max(vel.max(), 0.0)), float(max(-vel.min(), 0.0))
    if "clipping" in degradations or "aliasing" in degradations:
        if pos_peak >= neg_peak:
            span = pos_peak / rng.uniform(1.15, 1.6) / b_frac
        else:
            span = neg_peak / rng.uniform(1.15, 1.6) / (1.0 - b_frac)
    else:
        span = max(pos_peak * rng.uniform(1.1, 1.5) / b_frac, neg_peak * rng.uniform(1.1, 1.5) / (1.0 - b_frac))
    b = int(np.clip(round(b_frac * s), 2, s - 3))
    px = span / s
    v_rows = (b - np.arange(s, dtype=np.float64)) * px  # velocity at each row's centre
    aliasing = "aliasing" in degradations

    # spectrum: modal velocity and broadening per column, summed over the displayed aliases
    (a_lo, a_hi), (bb_lo, bb_hi), (f_lo, f_hi) = _SPECTRUM[flow]
    ae = np.abs(vel)
    modal = rng.uniform(a_lo, a_hi) * ae * np.exp(rng.normal(0.0, 0.05, w))
    sigma = np.maximum(rng.uniform(bb_lo, bb_hi) * ae * np.exp(rng.normal(0.0, 0.15, w)), 1.0 * px)
    fill = rng.uniform(f_lo, f_hi)
    peak_abs = max(pos_peak, neg_peak, 1e-6)
    amp = 0.55 + 0.45 * np.sqrt(ae / peak_abs)
    power = np.zeros((s, w))
    for k in _alias_shifts(degradations):
        power += _spectrum(v_rows[:, None] + k * span, vel[None, :], modal[None, :], sigma[None, :], fill, px)
    power *= amp[None, :]

    if "clutter" in degradations:  # strong low-velocity wall signal, stronger during systolic wall motion
        sig_c = max(rng.uniform(0.025, 0.06) * span, 1.5 * px)
        rr = 60.0 / hr
        phase = (t + rng.uniform(0, rr)) % rr
        burst = 0.4 + 0.6 * np.exp(-0.5 * ((phase - 0.1) / 0.06) ** 2)
        power += rng.uniform(0.8, 2.0) * np.exp(-0.5 * (v_rows[:, None] / sig_c) ** 2) * burst[None, :]
    if flow == "MV" and rng.uniform() < 0.5:  # valve clicks at opening / closure: thin vertical streaks
        onsets = np.flatnonzero(np.diff((vel > 0.5 * px).astype(np.int8)) > 0)
        reach = rng.uniform(0.05, 0.2) * span
        for c in onsets:
            power[np.abs(v_rows) < reach, c] += rng.uniform(0.2, 0.6)

    # speckle (multiplicative, gamma distributed, slightly correlated), noise, gain, log compression
    shape = rng.uniform(1.0, 2.0)
    speckle = rng.gamma(shape, 1.0 / shape, (s, w)).astype(_F32)
    speckle = cv2.GaussianBlur(speckle, (0, 0), sigmaX=0.5, sigmaY=0.7, borderType=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.75, 1.2)
    noise_level = rng.uniform(0.003, 0.015)
    if "weak" in degradations:
        gain *= rng.uniform(0.06, 0.2)
        noise_level *= rng.uniform(1.5, 3.0)
    if "clipping" in degradations:
        gain *= rng.uniform(1.6, 3.0)
    noise = rng.exponential(1.0, (s, w)).astype(_F32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=0.5, sigmaY=0.5, borderType=cv2.BORDER_REFLECT)
    p = gain * power * speckle + noise_level * noise
    c = rng.uniform(8.0, 25.0)
    spec = np.clip(np.log1p(c * p) / np.log1p(1.5 * c), 0.0, 1.0)

    img = np.zeros((s, s), _F32)
    img[:, c0:c1] = spec
    img[b, c0:c1] = rng.uniform(0.55, 0.9)  # baseline
    # velocity scale: a tick every `step` cm/s in the strip next to the spectrum, longer every second one
    step = _nice_step(span)
    tick = rng.uniform(0.65, 0.9)
    for j in range(-int(span // step) - 1, int(span // step) + 2):
        r = int(round(b - j * step / px))
        if 0 <= r < s:
            n = 3 if j % 2 == 0 else 2
            cols = slice(c0 - n, c0) if left_strip else slice(c1, c1 + n)
            img[r, cols] = tick
    img[b, (slice(0, c0) if left_strip else slice(c1, s))] = tick * 0.8

    mask = np.zeros((s, s), np.uint8)
    mask[:, c0:c1] = doppler_mask(v_rows, vel, span, aliasing)
    v_full = np.full(s, np.nan)
    v_full[c0:c1] = vel
    limit_pos, limit_neg = v_rows[0], v_rows[-1]
    info = {
        "flow": flow, "quality": quality, "degradations": list(degradations), "hr_bpm": float(hr),
        "sweep_s": float(sweep), "n_beats": float(sweep * hr / 60.0), "baseline_row": b, "scale_cm_s": float(span),
        "cm_s_per_px": float(px), "v_top": float(limit_pos), "v_bottom": float(limit_neg), "columns": (c0, c1),
        "velocity": v_full, "envelope_rows": b - v_full / px,
        "beyond_scale": (v_full > limit_pos + 0.5 * px) | (v_full < limit_neg - 0.5 * px),
        "peak_cm_s": float(vel[np.argmax(ae)]), "params": params, "gain": float(gain),
    }
    return img, mask, info


# ----------------------------------------------------------------------------- data set


def _plan(n: int, flows: Sequence[str], low_quality: float, seed: int) -> List[Tuple[str, int, str, str]]:
    """(flow, index within flow, quality, file name) per image, flows interleaved; equal counts per flow (the
    first flows get one more when n does not divide), round(low_quality x count) low-quality images per flow."""
    counts = [n // len(flows) + (k < n % len(flows)) for k in range(len(flows))]
    width = max(3, len(str(max(counts) - 1)))
    quality = {}
    for flow, cnt in zip(flows, counts):
        n_low = int(math.floor(low_quality * cnt + 0.5))
        low = set(np.random.default_rng([seed, FLOWS.index(flow), 0x10]).permutation(cnt)[:n_low].tolist())
        quality[flow] = ["low" if i in low else "good" for i in range(cnt)]
    plan = []
    for i in range(max(counts)):
        for flow, cnt in zip(flows, counts):
            if i < cnt:
                plan.append((flow, i, quality[flow][i], f"{flow}_{i:0{width}d}.png"))
    return plan


def make_doppler_dataset(out_dir, n: int = 600, size: int = 128, seed: int = 0, low_quality: float = 0.3,
                         flows: Sequence[str] = FLOWS) -> Path:
    """Write (or reuse) the simulated spectral Doppler data set under ``out_dir``; return its path.

    Flows get equal counts; within each flow ``round(low_quality x count)`` images are ``low`` quality.
    Idempotent: if ``out_dir/manifest.json`` records identical parameters (and its files exist), nothing is
    regenerated.
    """
    for name, v, lo in (("n", n, 1), ("size", size, 16)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise RecipeError(f"synthetic doppler data: {name} must be an integer >= {lo}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RecipeError(f"synthetic doppler data: seed must be a non-negative integer, got {seed!r}")
    if isinstance(low_quality, bool) or not isinstance(low_quality, (int, float)) or not 0 <= low_quality <= 1:
        raise RecipeError(f"synthetic doppler data: low_quality must be a fraction in [0, 1], got {low_quality!r}")
    flows = [flows] if isinstance(flows, str) else list(flows)
    if not flows or len(set(flows)) != len(flows) or any(f not in FLOWS for f in flows):
        raise RecipeError(f"synthetic doppler data: flows must be distinct names from {list(FLOWS)}, got {flows!r}")
    n, size, seed, low_quality = int(n), int(size), int(seed), float(low_quality)
    out = Path(out_dir)
    params = {"n": n, "size": size, "seed": seed, "low_quality": low_quality, "flows": flows}
    if is_complete(out, params, GENERATOR, GENERATOR_VERSION):
        return out
    plan = _plan(n, flows, low_quality, seed)
    img_dir, mask_dir = start_generation(out, {row[3] for row in plan}, FLOWS)

    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(COLUMNS)
    counts: Dict[str, Dict[str, int]] = {f: {"good": 0, "low": 0} for f in flows}
    degr = {d: 0 for d in DEGRADATIONS}
    for flow, i, quality, fname in plan:
        img, mask, info = render_doppler(np.random.default_rng([seed, FLOWS.index(flow), i, 0xD0]), flow, quality,
                                         size)
        img8 = np.round(img * 255.0).astype(np.uint8)
        if not (cv2.imwrite(str(img_dir / fname), img8) and cv2.imwrite(str(mask_dir / fname), mask * 255)):
            raise OSError(f"could not write {img_dir / fname}")
        wr.writerow([fname, flow, quality, flow, f"{flow}_{quality}"])
        counts[flow][quality] += 1
        for d in info["degradations"]:
            degr[d] += 1
    write_text(out / "labels.csv", buf.getvalue())
    write_json(out / "manifest.json", {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "params": params,
        "flows": flows,
        "counts": counts,
        "degradations": degr,
        "layout": {"images": "images/", "masks": "masks/", "labels": "labels.csv", "columns": list(COLUMNS)},
    })
    return out


__all__ = ["COLUMNS", "DEGRADATIONS", "FLOWS", "QUALITIES", "doppler_mask", "envelope", "make_doppler_dataset",
           "render_doppler"]
