"""Measurements from segmentation masks: muscle thickness, pennation angle and fascicle length.

A consumer of masks, not part of a network (the shape of DL_Track's separate geometry step). A recipe declares
a measurement as a ``derive`` entry with ``measure:`` instead of ``rule:`` (one mechanism, checked at load by
:meth:`umsrep.recipe.Recipe.derive_measurements`); the kinds live in the registry :data:`MEASUREMENTS`.

Coordinates. A mask may come at the model's size ``(h, w)``; the image it belongs to has its ORIGINAL size
``(H, W)``. Every pixel ``(r, c)`` of the mask is mapped to the original grid as the cell
``[c·sx, (c+1)·sx) × [r·sy, (r+1)·sy)`` with ``sx = W / w`` and ``sy = H / h`` (x and y scaled separately, so
non-square originals come back right), and all geometry is done in those continuous coordinates: values are in
pixels of the original image. With a pixel spacing (mm per original pixel, per row and per column) the same
geometry is done once more in millimetres (coordinates times the spacing), so angles and lengths stay right for
anisotropic pixels too.

Method (docs/measurements.md):

- **aponeuroses**: connected components of the aponeurosis mask spanning at least ``min_span`` of the image
  width are merged into bands (a component whose centre lies within 1.5× the two bands' thickness of a band's
  line belongs to it: one aponeurosis drawn in pieces); bands are ordered by depth and the top two are the
  superficial and the deep aponeurosis (the muscle directly under the superficial one). A polynomial
  ``y = f(x)`` of degree ``fit_degree`` is fitted to each band's inner edge (``edge: inner``: the lower border
  of the superficial and the upper border of the deep band, column by column) or to its centre line;
- **thickness**: mean distance between the two curves over the central ``region`` fraction of the horizontal
  span where both aponeuroses are drawn (the image width when they cross the whole image), ``vertical`` (along
  the image columns, the ultrasound beam) or ``perpendicular`` (from the deep curve to the nearest point of the
  superficial one);
- **fascicles**: connected components of the fascicle mask with a length of at least ``min_fascicle_length``
  of the image width, elongated (principal axes ratio >= 3) and lying between the aponeuroses; each gets its
  orientation and length from a principal component analysis of its pixel centres. The dominant orientation is
  the peak of a length-weighted orientation histogram (1° bins, Gaussian smoothing σ = 3°, circular over 180°),
  refined as the length-weighted axial mean of the fascicles within ``angle_window`` degrees of the peak;
- **pennation angle**: the acute angle between the dominant fascicle orientation and the deep aponeurosis
  (its tangent at the centre of the measured span);
- **fascicle length**: each fascicle within ``angle_window`` of the dominant orientation as a straight line
  (through its centre, with the dominant orientation or its own: ``fascicle_line``) extended to both
  aponeurosis curves; the length between the two intersections, median over fascicles.

A mask without usable structure (no aponeurosis, one aponeurosis only, no fascicle, lines that cross) gives NaN
and a one-line reason, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from umsrep.registry import Registry

# -------------------------------------------------------------------------------------------------- geometry


@dataclass
class Aponeuroses:
    """The two aponeurosis curves ``y = f(x)`` (numpy polynomial coefficients, highest power first) in the
    target frame, and the horizontal span ``(x0, x1)`` where both are drawn; ``reason`` when not found."""

    superficial: Optional[np.ndarray] = None
    deep: Optional[np.ndarray] = None
    x_range: Optional[Tuple[float, float]] = None
    width: float = 0.0
    reason: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def centre(self) -> float:
        return 0.5 * (self.x_range[0] + self.x_range[1])

    def deep_angle(self) -> float:
        """Orientation of the deep aponeurosis (degrees in [0, 180), image axes: x right, y down)."""
        slope = np.polyval(np.polyder(self.deep), self.centre())
        return float(np.degrees(np.arctan(slope)) % 180.0)


@dataclass
class Fascicles:
    """Fascicle segments in the target frame: centres (n, 2) as (x, y), orientations (degrees, [0, 180)),
    lengths; ``dominant`` orientation and the indices ``used`` within the angle window."""

    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dominant: Optional[float] = None
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    reason: Optional[str] = None


def _components(mask) -> List[Tuple[np.ndarray, np.ndarray]]:
    """8-connected components of a binary mask as (rows, cols) index arrays."""
    import cv2

    m = np.ascontiguousarray(np.asarray(mask) > 0, np.uint8)
    if not m.any():
        return []
    n, lab = cv2.connectedComponents(m, connectivity=8)
    order = np.argsort(lab, axis=None, kind="stable")
    flat = lab.reshape(-1)[order]
    starts = np.searchsorted(flat, np.arange(1, n + 1))
    out = []
    for k in range(1, n):
        idx = order[starts[k - 1]:starts[k]]
        out.append((idx // m.shape[1], idx % m.shape[1]))
    return out


def _column_edge(rows, cols, pick: str) -> Tuple[np.ndarray, np.ndarray]:
    """Per mask column: the largest row (``max``), the smallest (``min``) or the mean (``mean``)."""
    ucols, inv = np.unique(cols, return_inverse=True)
    if pick == "max":
        v = np.full(len(ucols), -np.inf)
        np.maximum.at(v, inv, rows)
    elif pick == "min":
        v = np.full(len(ucols), np.inf)
        np.minimum.at(v, inv, rows)
    else:
        v = np.bincount(inv, weights=rows) / np.bincount(inv)
    return ucols, v


def _robust_polyfit(x, y, degree):
    """Least-squares polynomial, refitted once without points more than 3 MADs (at least 1 unit) off."""
    deg = min(degree, max(len(np.unique(x)) - 1, 0))
    coef = np.polyfit(x, y, deg)
    res = y - np.polyval(coef, x)
    mad = np.median(np.abs(res - np.median(res)))
    keep = np.abs(res) <= max(3 * 1.4826 * mad, 1.0)
    if keep.sum() > deg + 1 and not keep.all():
        coef = np.polyfit(x[keep], y[keep], deg)
    if deg < degree:
        coef = np.concatenate([np.zeros(degree - deg), coef])
    return coef


def find_aponeuroses(mask, scale=(1.0, 1.0), fit_degree: int = 1, edge: str = "inner",
                     min_span: float = 0.2) -> Aponeuroses:
    """Superficial and deep aponeurosis curves from a binary aponeurosis mask (see the module docstring);
    ``scale = (sy, sx)``: target units per mask pixel."""
    sy, sx = float(scale[0]), float(scale[1])
    h, w = np.asarray(mask).shape[:2]
    width = w * sx
    comps = _components(mask)
    if not comps:
        return Aponeuroses(width=width, reason="no aponeurosis in the mask")
    items = []
    for rows, cols in comps:
        span = (cols.max() - cols.min() + 1) * sx
        if span < min_span * width:
            continue
        xc = (cols + 0.5) * sx
        yc = (rows + 0.5) * sy
        line = np.polyfit(xc, yc, 1) if len(np.unique(cols)) > 1 else np.array([0.0, yc.mean()])
        items.append({"rows": rows, "cols": cols, "span": span, "x": xc.mean(), "y": yc.mean(), "line": line,
                      "thick": len(rows) * sx * sy / span})
    if not items:
        return Aponeuroses(width=width, reason=f"no aponeurosis spans {min_span:.0%} of the image width")
    bands: List[dict] = []
    for it in sorted(items, key=lambda d: -d["span"]):
        for b in bands:
            if abs(np.polyval(b["line"], it["x"]) - it["y"]) < 1.5 * (b["thick"] + it["thick"]):
                b["parts"].append(it)
                break
        else:
            bands.append({"line": it["line"], "thick": it["thick"], "parts": [it]})
    if len(bands) < 2:
        return Aponeuroses(width=width, reason="one aponeurosis only")
    mid = width / 2
    bands.sort(key=lambda b: np.polyval(b["line"], mid))
    curves, ranges = [], []
    for b, pick in ((bands[0], "max"), (bands[1], "min")):
        rows = np.concatenate([p["rows"] for p in b["parts"]])
        cols = np.concatenate([p["cols"] for p in b["parts"]])
        if edge == "inner":
            ucols, r = _column_edge(rows, cols, pick)
            y = (r + (1.0 if pick == "max" else 0.0)) * sy
        else:
            ucols, r = _column_edge(rows, cols, "mean")
            y = (r + 0.5) * sy
        curves.append(_robust_polyfit((ucols + 0.5) * sx, y, fit_degree))
        ranges.append((cols.min() * sx, (cols.max() + 1) * sx))
    x0, x1 = max(ranges[0][0], ranges[1][0]), min(ranges[0][1], ranges[1][1])
    if x1 - x0 < 0.05 * width:
        return Aponeuroses(width=width, reason="the two aponeuroses do not overlap horizontally")
    xs = np.linspace(x0, x1, 64)
    if np.any(np.polyval(curves[1], xs) - np.polyval(curves[0], xs) <= 0):
        return Aponeuroses(width=width, reason="the aponeurosis lines cross")
    return Aponeuroses(curves[0], curves[1], (float(x0), float(x1)), width)


def _axial_mean(angles, weights) -> float:
    """Weighted mean of orientations (degrees, period 180)."""
    a = np.radians(2 * np.asarray(angles, float))
    return float(np.degrees(np.arctan2(np.sum(weights * np.sin(a)), np.sum(weights * np.cos(a)))) / 2 % 180.0)


def _axial_diff(a, b):
    d = np.abs(np.asarray(a, float) - b) % 180.0
    return np.minimum(d, 180.0 - d)


def find_fascicles(mask, scale=(1.0, 1.0), min_length: float = 0.03, angle_window: float = 10.0,
                   apo: Optional[Aponeuroses] = None) -> Fascicles:
    """Fascicle segments of a binary fascicle mask and their dominant orientation (module docstring);
    with ``apo``, only segments whose centre lies between the aponeuroses count."""
    sy, sx = float(scale[0]), float(scale[1])
    w = np.asarray(mask).shape[1]
    comps = _components(mask)
    if not comps:
        return Fascicles(reason="no fascicle in the mask")
    cen, ang, length = [], [], []
    for rows, cols in comps:
        if len(rows) < 3:
            continue
        pts = np.stack([(cols + 0.5) * sx, (rows + 0.5) * sy], axis=1)
        c = pts.mean(axis=0)
        evals, evecs = np.linalg.eigh(np.cov((pts - c).T))
        u = evecs[:, 1]
        proj = (pts - c) @ u
        ext = proj.max() - proj.min()
        if ext < min_length * w * sx or evals[0] * 9 > evals[1]:  # too short, or not elongated (ratio < 3)
            continue
        if apo is not None and apo.ok:
            if not np.polyval(apo.superficial, c[0]) < c[1] < np.polyval(apo.deep, c[0]):
                continue
        cen.append(c)
        ang.append(np.degrees(np.arctan2(u[1], u[0])) % 180.0)
        length.append(ext)
    if not cen:
        return Fascicles(reason="no elongated fascicle" + (" between the aponeuroses" if apo is not None else ""))
    ang_a, len_a = np.asarray(ang), np.asarray(length)
    grid = np.arange(180) + 0.5
    hist = np.sum(len_a[None, :] * np.exp(-0.5 * (_axial_diff(grid[:, None], ang_a[None, :]) / 3.0) ** 2), axis=1)
    peak = float(grid[np.argmax(hist)])
    used = np.flatnonzero(_axial_diff(ang_a, peak) <= angle_window)
    dom = _axial_mean(ang_a[used], len_a[used])
    return Fascicles(np.asarray(cen), ang_a, len_a, dom, used)


def _unit(angle_deg) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([np.cos(a), np.sin(a)])


def line_curve_intersection(p, u, coef) -> Optional[float]:
    """Parameter ``t`` (closest to 0) where the line ``p + t·u`` meets the curve ``y = polyval(coef, x)``."""
    from numpy.polynomial import Polynomial

    f = Polynomial(np.asarray(coef, float)[::-1])
    g = Polynomial([p[1], u[1]]) - f(Polynomial([p[0], u[0]]))
    g = g.trim(tol=1e-12)
    if g.degree() < 1:
        return None
    roots = g.roots()
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real[np.argmin(np.abs(real))]) if real.size else None


def fascicle_segment(apo: Aponeuroses, p, angle) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The line through ``p`` with orientation ``angle`` cut by both aponeuroses: (superficial point, deep
    point), or None when it does not meet both (parallel, or the centre not between them)."""
    u = _unit(angle)
    ts, td = line_curve_intersection(p, u, apo.superficial), line_curve_intersection(p, u, apo.deep)
    if ts is None or td is None or ts * td >= 0:
        return None
    return np.asarray(p) + ts * u, np.asarray(p) + td * u


# ------------------------------------------------------------------------------------------- measurement kinds


@dataclass(frozen=True)
class MeasurementKind:
    """A registered measurement: the mask roles it reads (each a segmentation task in the recipe), its unit
    (``length`` -> px and mm; ``angle`` -> degrees), the ``derive`` fields it uses, and the function
    ``(ImageGeometry, spec) -> (value, reason, drawing)``."""

    name: str
    roles: Tuple[str, ...]
    unit: str
    params: Tuple[str, ...]
    compute: Callable
    description: str = ""


MEASUREMENTS: Registry[MeasurementKind] = Registry("measurement")
APO_PARAMS = ("fit_degree", "edge", "min_span")
FASC_PARAMS = ("angle_window", "min_fascicle_length")


def _register(kind: MeasurementKind) -> MeasurementKind:
    MEASUREMENTS.register(kind.name)(kind)
    return kind


class ImageGeometry:
    """One image's masks (by task name) in one target frame; the aponeurosis and fascicle analyses are done once
    per task and settings and shared by every measurement that reads them."""

    def __init__(self, masks: Dict[str, np.ndarray], scale: Dict[str, Tuple[float, float]]):
        self.masks, self.scale, self._cache = masks, scale, {}

    def aponeuroses(self, task, spec) -> Aponeuroses:
        key = ("apo", task, spec.fit_degree, spec.edge, spec.min_span)
        if key not in self._cache:
            self._cache[key] = find_aponeuroses(self.masks[task], self.scale[task], spec.fit_degree, spec.edge,
                                                spec.min_span)
        return self._cache[key]

    def fascicles(self, task, spec, apo: Aponeuroses) -> Fascicles:
        key = ("fasc", task, spec.min_fascicle_length, spec.angle_window, id(apo))
        if key not in self._cache:
            self._cache[key] = find_fascicles(self.masks[task], self.scale[task], spec.min_fascicle_length,
                                              spec.angle_window, apo)
        return self._cache[key]


def _role(spec, role):
    return spec.inputs[role]


def _apo_drawing(apo: Aponeuroses) -> dict:
    xs = np.linspace(0.0, apo.width, 32)
    return {"superficial": np.stack([xs, np.polyval(apo.superficial, xs)], 1),
            "deep": np.stack([xs, np.polyval(apo.deep, xs)], 1)}


def _thickness(g: ImageGeometry, spec):
    apo = g.aponeuroses(_role(spec, "aponeurosis"), spec)
    if not apo.ok:
        return np.nan, apo.reason, {}
    c, half = apo.centre(), 0.5 * spec.region * (apo.x_range[1] - apo.x_range[0])
    xs = np.linspace(c - half, c + half, 101)
    yd = np.polyval(apo.deep, xs)
    if spec.distance == "vertical":
        d = yd - np.polyval(apo.superficial, xs)
        seg = np.array([[c, np.polyval(apo.superficial, c)], [c, np.polyval(apo.deep, c)]])
    else:
        x0, x1 = apo.x_range
        dense = np.linspace(x0 - (x1 - x0), x1 + (x1 - x0), 4001)
        sup = np.stack([dense, np.polyval(apo.superficial, dense)], 1)
        pts = np.stack([xs, yd], 1)
        dist = np.linalg.norm(pts[:, None, :] - sup[None, :, :], axis=2)
        d = dist.min(axis=1)
        k = len(xs) // 2
        seg = np.array([sup[np.argmin(dist[k])], pts[k]])
        if apo.superficial.size <= 2 or not np.any(apo.superficial[:-2]):  # straight: exact point-line distance
            m, b = apo.superficial[-2], apo.superficial[-1]
            d = np.abs(m * xs - yd + b) / np.hypot(m, 1.0)
    value = float(np.mean(d))
    return value, None, {**_apo_drawing(apo), "thickness": seg, "value": value}


def _fascicle_setup(g: ImageGeometry, spec):
    apo = g.aponeuroses(_role(spec, "aponeurosis"), spec)
    if not apo.ok:
        return apo, None, apo.reason
    fas = g.fascicles(_role(spec, "fascicles"), spec, apo)
    return apo, fas, fas.reason


def _dominant_line(apo, fas) -> dict:
    c = apo.centre()
    p = np.array([c, 0.5 * (np.polyval(apo.superficial, c) + np.polyval(apo.deep, c))])
    seg = fascicle_segment(apo, p, fas.dominant)
    return {} if seg is None else {"fascicle": np.stack(seg)}


def _pennation(g: ImageGeometry, spec):
    apo, fas, reason = _fascicle_setup(g, spec)
    if reason:
        return np.nan, reason, {}
    angle = float(_axial_diff(fas.dominant, apo.deep_angle()))
    return angle, None, {**_apo_drawing(apo), **_dominant_line(apo, fas), "angle": angle}


def _fascicle_length(g: ImageGeometry, spec):
    apo, fas, reason = _fascicle_setup(g, spec)
    if reason:
        return np.nan, reason, {}
    lengths, too_long = [], 0
    mask = g.masks[_role(spec, "fascicles")]
    limit = spec.max_fascicle_length * np.asarray(mask).shape[1] * float(g.scale[_role(spec, "fascicles")][1])
    for i in fas.used:
        seg = fascicle_segment(apo, fas.centres[i], fas.dominant if spec.fascicle_line == "dominant"
                               else fas.angles[i])
        if seg is not None:
            length = float(np.linalg.norm(seg[1] - seg[0]))
            if length > limit:
                too_long += 1
            else:
                lengths.append(length)
    if not lengths:
        return np.nan, (f"fascicle lines nearly parallel to the aponeuroses (longer than {spec.max_fascicle_length:g}"
                        " image widths)" if too_long else "no fascicle line meets both aponeuroses"), {}
    return float(np.median(lengths)), None, {**_apo_drawing(apo), **_dominant_line(apo, fas),
                                              "n_fascicles": len(lengths)}


_register(MeasurementKind(
    "thickness", ("aponeurosis",), "length", APO_PARAMS + ("region", "distance"), _thickness,
    "muscle thickness: mean distance between the superficial and deep aponeurosis over the central region"))
_register(MeasurementKind(
    "pennation_angle", ("aponeurosis", "fascicles"), "angle", APO_PARAMS + FASC_PARAMS, _pennation,
    "pennation angle: dominant fascicle orientation against the deep aponeurosis (degrees)"))
_register(MeasurementKind(
    "fascicle_length", ("aponeurosis", "fascicles"), "length",
    APO_PARAMS + FASC_PARAMS + ("fascicle_line", "max_fascicle_length"), _fascicle_length,
    "fascicle length: fascicle lines extended to both aponeuroses, median over fascicles"))


# --------------------------------------------------------------------------------------------------- batches


@dataclass
class Measured:
    """Measurements over n images: ``values[name]`` (n,) in original-image pixels (lengths) or degrees (angles,
    from the millimetre frame when a spacing is known), ``mm[name]`` (n,) NaN without a spacing (lengths only),
    ``reasons[name]`` (n,) why a value is NaN, ``drawings[i][name]`` geometry in original pixels."""

    units: Dict[str, str]
    values: Dict[str, np.ndarray]
    mm: Dict[str, np.ndarray]
    reasons: Dict[str, List[Optional[str]]]
    drawings: List[Dict[str, dict]]

    def columns(self, i: int) -> Dict[str, object]:
        """One image's values as predictions.csv columns: ``<name>_px`` and ``<name>_mm`` (lengths) or
        ``<name>_deg`` (angles), and ``<name>_note`` (why it is missing, empty when measured)."""
        row = {}
        for name, unit in self.units.items():
            if unit == "length":
                row[f"{name}_px"] = _num(self.values[name][i])
                row[f"{name}_mm"] = _num(self.mm[name][i])
            else:
                row[f"{name}_deg"] = _num(self.values[name][i])
            row[f"{name}_note"] = self.reasons[name][i] or ""
        return row


def _num(v):
    return None if not np.isfinite(v) else round(float(v), 4)


def _as_pair(v):
    v = np.asarray(v, float).reshape(-1)
    return (float(v[0]), float(v[0])) if v.size == 1 else (float(v[0]), float(v[1]))


def measure_images(specs: Dict[str, object], label_maps: Dict[str, Sequence[np.ndarray]],
                   sizes: Optional[Sequence[Tuple[int, int]]] = None,
                   spacing: Optional[Sequence] = None) -> Measured:
    """Every measurement of ``specs`` (``{name: DeriveConfig with measure}``, from
    :meth:`Recipe.derive_measurements`) on n images.

    ``label_maps[task]``: n label maps (0 = background; any other value counts), each at the model's size or
    any size; ``sizes``: n original ``(height, width)`` (default: each mask's own size); ``spacing``: n values
    of mm per original pixel, each a number or ``(row, column)``, NaN/None where unknown (default: unknown).
    """
    tasks = sorted({t for s in specs.values() for t in s.inputs.values()})
    n = len(label_maps[tasks[0]]) if tasks else 0
    units = {name: MEASUREMENTS.get(s.measure).unit for name, s in specs.items()}
    values = {name: np.full(n, np.nan) for name in specs}
    mm = {name: np.full(n, np.nan) for name in specs}
    reasons: Dict[str, List[Optional[str]]] = {name: [None] * n for name in specs}
    drawings: List[Dict[str, dict]] = [{} for _ in range(n)]
    for i in range(n):
        masks = {t: np.asarray(label_maps[t][i]) for t in tasks}
        size = None if sizes is None or sizes[i] is None else (float(sizes[i][0]), float(sizes[i][1]))
        px_scale = {t: (1.0, 1.0) if size is None else (size[0] / m.shape[0], size[1] / m.shape[1])
                    for t, m in masks.items()}
        sp = None if spacing is None or spacing[i] is None else _as_pair(spacing[i])
        if sp is not None and not (np.all(np.isfinite(sp)) and min(sp) > 0):
            sp = None
        g_px = ImageGeometry(masks, px_scale)
        g_mm = None if sp is None else ImageGeometry(
            masks, {t: (s[0] * sp[0], s[1] * sp[1]) for t, s in px_scale.items()})
        for name, spec in specs.items():
            kind = MEASUREMENTS.get(spec.measure)
            try:
                v, why, draw = kind.compute(g_px, spec)
                if g_mm is not None:
                    v_mm, why_mm, _ = kind.compute(g_mm, spec)
                    if kind.unit == "angle":
                        v, why = v_mm, why_mm
                    else:
                        mm[name][i] = v_mm
            except Exception as e:  # never crash on a mask: NaN with the reason  # noqa: BLE001
                v, why, draw = np.nan, f"measurement failed ({type(e).__name__}: {e})", {}
            values[name][i] = v
            reasons[name][i] = why if not np.isfinite(v) else None
            if draw:
                drawings[i][name] = draw
    return Measured(units, values, mm, reasons, drawings)


# -------------------------------------------------------------------------------------------------- drawing


def draw_measurements(rgb: np.ndarray, drawings: Dict[str, dict], original_size=None) -> np.ndarray:
    """Draw one image's measurement geometry (original-pixel coordinates, from :class:`Measured`) on an RGB
    uint8 image of any size (coordinates are scaled from ``original_size`` (H, W) to the image): the two
    aponeurosis lines (yellow), the thickness segment (cyan, with its value), the dominant fascicle line
    (magenta, with the pennation angle)."""
    import cv2

    out = np.ascontiguousarray(np.asarray(rgb, np.uint8).copy())
    h, w = out.shape[:2]
    oh, ow = (h, w) if original_size is None else original_size
    fx, fy = w / float(ow), h / float(oh)
    thick = max(1, round(min(h, w) / 200))
    font = max(0.3, min(h, w) / 600)

    def pts(a):
        a = np.asarray(a, float)
        return np.round(np.stack([a[:, 0] * fx, a[:, 1] * fy], 1) * 16).astype(np.int32)  # 4 fractional bits

    def line(a, colour):
        cv2.polylines(out, [pts(a)], False, colour, thick, cv2.LINE_AA, shift=4)

    def text(s, at, colour):
        x, y = int(np.clip(at[0] * fx + 4, 0, w - 40)), int(np.clip(at[1] * fy, 10, h - 4))
        cv2.putText(out, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA)

    done_apo = False
    for name, d in drawings.items():
        if "superficial" in d and not done_apo:
            line(d["superficial"], (255, 230, 0))
            line(d["deep"], (255, 230, 0))
            done_apo = True
        if "thickness" in d:
            line(d["thickness"], (0, 230, 255))
            seg = np.asarray(d["thickness"])
            text(f"{name} {d['value']:.0f}px", seg.mean(axis=0), (0, 230, 255))
        if "fascicle" in d:
            line(d["fascicle"], (255, 0, 255))
            if "angle" in d:
                text(f"{d['angle']:.1f} deg", np.asarray(d["fascicle"])[1], (255, 0, 255))
    return out


# -------------------------------------------------------------------------------------------------- spacing


def dicom_pixel_spacing(path) -> Optional[Tuple[float, float]]:
    """(row, column) mm per pixel from a DICOM file's PixelSpacing (or ImagerPixelSpacing); None otherwise."""
    from umsrep.data.readers import is_dicom

    if not is_dicom(path):
        return None
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        v = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        if v is None or len(v) < 2:
            return None
        out = (float(v[0]), float(v[1]))
        return out if min(out) > 0 else None
    except Exception:  # an unreadable header means no spacing, never a crash  # noqa: BLE001
        return None


def image_spacings(files: Sequence, names: Sequence[str], pixel_spacing=None,
                   table: Optional[Dict[str, Dict[str, str]]] = None) -> Optional[list]:
    """Each image's mm per original pixel: DICOM PixelSpacing, else the recipe's ``pixel_spacing.column`` in the
    labels ``table`` ({stem: row}), else ``pixel_spacing.mm``; None for an image without one, and None for all
    when no image has one."""
    out = []
    for f, n in zip(files, names):
        s = dicom_pixel_spacing(f) if f is not None else None
        if s is None and pixel_spacing is not None and pixel_spacing.column and table is not None:
            try:
                v = float(table.get(n, {}).get(pixel_spacing.column, "") or "nan")
                s = v if np.isfinite(v) and v > 0 else None
            except ValueError:
                s = None
        if s is None and pixel_spacing is not None and pixel_spacing.mm is not None:
            s = pixel_spacing.mm
        out.append(s)
    return out if any(s is not None for s in out) else None
