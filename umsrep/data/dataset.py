"""Load a folder data set (images, optional masks, optional labels CSV) into memory.

Layout::

    root/
      images/<stem>.<ext>      any extension of IMAGE_EXTENSIONS
      masks/<stem>.<ext>       optional; paired with images by file stem
      labels.csv               optional; columns filename,label[,patient,...]

Bad files (unreadable, unpaired mask, mask size mismatch, CSV row without image, duplicate stems) either stop the load
with a one-line :class:`DataError` (``on_bad_file="error"``) or are dropped and listed in ``LoadedData.skipped``
(``on_bad_file="skip"``). Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umsrep.data.readers import IMAGE_EXTENSIONS, fit_image, fit_mask, read_image, read_mask
from umsrep.errors import DataError


@dataclass
class Skipped:
    """A file left out of the data set and why."""

    file: str
    reason: str


@dataclass
class LoadedData:
    names: list  # pairing key = file stem, e.g. "benign_001"
    files: list  # image paths
    images: np.ndarray  # (N, H, W, C) float32 in [0, 1], resized to image_size
    masks: np.ndarray | None  # (N, H, W) int32 raw label maps (nearest); -1 where the image has no mask
    has_mask: np.ndarray  # (N,) bool
    labels: list  # label from the labels CSV, None if the image has no row
    groups: list  # value of the group_by column, None if no group_by
    skipped: list = field(default_factory=list)  # list[Skipped]
    sizes: np.ndarray | None = None  # (N, 2) original (height, width) of each image, before resizing
    mask_files: list = field(default_factory=list)  # mask path per image, None without a mask
    origins: list = field(default_factory=list)  # pooled data (data.pool): the data set of each image, else empty

    def subset(self, idx) -> "LoadedData":
        """Rows ``idx`` (integer indices or a boolean mask) of every per-sample field; ``skipped`` is kept as is."""
        idx = np.asarray(idx)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean index has shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp).reshape(-1)
        rows = [int(i) for i in idx]
        return LoadedData(
            names=[self.names[i] for i in rows],
            files=[self.files[i] for i in rows],
            images=self.images[idx],
            masks=None if self.masks is None else self.masks[idx],
            has_mask=self.has_mask[idx],
            labels=[self.labels[i] for i in rows],
            groups=[self.groups[i] for i in rows],
            skipped=list(self.skipped),
            sizes=None if self.sizes is None else self.sizes[idx],
            mask_files=[self.mask_files[i] for i in rows] if self.mask_files else [],
            origins=[self.origins[i] for i in rows] if self.origins else [],
        )

    def __len__(self) -> int:
        return len(self.names)


class _BadFiles:
    """Collects bad files; raises at the first one in error mode."""

    def __init__(self, mode: str):
        self.mode = mode
        self.items: list[Skipped] = []

    def add(self, file, reason: str) -> None:
        reason = " ".join(str(reason).split())
        if self.mode == "error":
            raise DataError(f"{file}: {reason}")
        self.items.append(Skipped(str(file), reason))


def _resolve(root: Path, sub) -> Path:
    p = Path(sub).expanduser()
    return p if p.is_absolute() else root / p


def _list_files(folder: Path, kind: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {kind} folder not found")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.name)


def _by_stem(files: list[Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in files:
        out.setdefault(p.stem, []).append(p)
    return out


def _read_csv(path: Path, filename_column: str, label_column: str, group_by: str | None):
    """Return a list of ``(row_number, filename, label, group)``; row numbers count the header as row 1."""
    if not path.is_file():
        raise DataError(f"{path}: labels CSV not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: labels CSV is empty")
            header = [h.strip() for h in header]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise DataError(f"{path}: cannot read labels CSV ({reason})") from None
    cols = ", ".join(header)
    for col, what in ((filename_column, "filename_column"), (label_column, "label_column"), (group_by, "group_by")):
        if col is not None and col not in header:
            raise DataError(f"{path}: no column '{col}' ({what}); columns are: {cols}")
    i_file, i_label = header.index(filename_column), header.index(label_column)
    i_group = header.index(group_by) if group_by is not None else None
    out = []
    for n, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        fname = row[i_file].strip()
        label = row[i_label].strip() or None
        group = (row[i_group].strip() or None) if i_group is not None else None
        out.append((n, fname, label, group))
    return out


def load_dataset(
    root,
    images="images",
    masks=None,
    labels=None,
    *,
    image_size=(256, 256),
    channels=1,
    filename_column="filename",
    label_column="label",
    group_by=None,
    on_bad_file="error",
    workers=None,
    resize="stretch",
) -> LoadedData:
    """Load images (and masks / labels) from ``root`` into a :class:`LoadedData` (see the module docstring)."""
    if on_bad_file not in ("error", "skip"):
        raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    height, width = (int(s) for s in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive (height, width), got {image_size!r}")
    if group_by is not None and labels is None:
        raise ValueError("group_by needs a labels CSV (labels=...)")

    root = Path(root).expanduser()
    image_dir = _resolve(root, images)
    mask_dir = _resolve(root, masks) if masks is not None else None
    csv_path = _resolve(root, labels) if labels is not None else None
    bad = _BadFiles(on_bad_file)

    # ---- listing and pairing (cheap checks first, in a fixed order) ----
    image_files = _list_files(image_dir, "images")
    if not image_files:
        raise DataError(f"{image_dir}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    mask_files = _list_files(mask_dir, "masks") if mask_dir is not None else []
    csv_rows = _read_csv(csv_path, filename_column, label_column, group_by) if csv_path is not None else []

    images_by_stem = _by_stem(image_files)
    masks_by_stem = _by_stem(mask_files)
    dropped: set[str] = set()  # image stems not to load

    for stem, paths in images_by_stem.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            for p in paths:
                bad.add(p, f"duplicate image file stem '{stem}' ({names}); masks and labels pair by stem")
            dropped.add(stem)

    for stem, paths in masks_by_stem.items():
        if stem not in images_by_stem:
            for p in paths:
                bad.add(p, f"mask has no image with stem '{stem}' in {image_dir}")
        elif len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            for p in paths:
                bad.add(p, f"duplicate mask file stem '{stem}' ({names}); image of stem '{stem}' not loaded")
            dropped.add(stem)

    # labels CSV: match a row to an image by file name, else by stem
    image_by_name = {p.name: p for p in image_files}
    label_of: dict[str, tuple[int, str | None, str | None]] = {}  # stem -> (row, label, group)
    for row_no, fname, label, group in csv_rows:
        base = Path(fname.replace("\\", "/")).name if fname else ""
        if base in image_by_name:
            stem = image_by_name[base].stem
        elif base and Path(base).stem in images_by_stem and len(images_by_stem[Path(base).stem]) == 1:
            stem = Path(base).stem
        else:
            bad.add(csv_path, f"row {row_no} ({filename_column}='{fname}'): no such image in {image_dir}")
            continue
        if stem in label_of:
            first_row, first_label, first_group = label_of[stem]
            if (first_label, first_group) != (label, group):
                bad.add(
                    csv_path,
                    f"row {row_no} ({filename_column}='{fname}'): conflicts with row {first_row} "
                    "for the same image; image not loaded",
                )
                dropped.add(stem)
            continue
        label_of[stem] = (row_no, label, group)

    # ---- reading (parallel) ----
    samples = [(stem, paths[0]) for stem, paths in images_by_stem.items() if stem not in dropped]
    samples.sort(key=lambda s: s[1].name)
    n = len(samples)
    img_arr = np.zeros((n, height, width, channels), np.float32)
    mask_arr = np.full((n, height, width), -1, np.int32) if mask_dir is not None else None
    has_mask = np.zeros(n, bool)
    sizes = np.zeros((n, 2), np.int64)
    mask_paths: list = [None] * n

    def work(i: int):
        stem, ipath = samples[i]
        try:
            img = read_image(ipath, channels)
        except DataError as exc:
            return ipath, _strip_path(exc, ipath)
        mpaths = masks_by_stem.get(stem)
        if mask_arr is not None and mpaths:
            mpath = mpaths[0]
            try:
                mask = read_mask(mpath)
            except DataError as exc:
                return mpath, _strip_path(exc, mpath)
            if mask.shape != img.shape[:2]:
                return mpath, (
                    f"mask size {mask.shape[0]}x{mask.shape[1]} differs from image size "
                    f"{img.shape[0]}x{img.shape[1]} (height x width) of {ipath.name}"
                )
            mask_arr[i] = fit_mask(mask, (height, width), resize).astype(np.int32)
            has_mask[i] = True
            mask_paths[i] = str(mpath)
        img_arr[i] = fit_image(img, (height, width), resize)
        sizes[i] = img.shape[:2]
        return None

    keep = np.ones(n, bool)
    n_workers = max(1, int(workers or os.cpu_count() or 1))
    if n:
        with ThreadPoolExecutor(max_workers=min(n_workers, n)) as pool:
            futures = [pool.submit(work, i) for i in range(n)]
            try:
                for i, fut in enumerate(futures):  # in sample order, so "first bad file" is deterministic
                    result = fut.result()
                    if result is not None:
                        keep[i] = False
                        bad.add(*result)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DataError(f"{image_dir}: no usable images ({len(bad.items)} bad files skipped)")
    if idx.size < n:
        img_arr = img_arr[idx]
        mask_arr = mask_arr[idx] if mask_arr is not None else None
        has_mask = has_mask[idx]
        sizes = sizes[idx]
    kept = [samples[i] for i in idx]
    return LoadedData(
        names=[stem for stem, _ in kept],
        files=[str(p) for _, p in kept],
        images=img_arr,
        masks=mask_arr,
        has_mask=has_mask,
        labels=[label_of[stem][1] if stem in label_of else None for stem, _ in kept],
        groups=[label_of[stem][2] if group_by is not None and stem in label_of else None for stem, _ in kept],
        skipped=bad.items,
        sizes=sizes,
        mask_files=[mask_paths[i] for i in idx],
    )


def _strip_path(exc: DataError, path: Path) -> str:
    """The reason of a reader error without its leading ``"<path>: "``."""
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
