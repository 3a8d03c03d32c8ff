"""Read images and masks from raster files (PNG, JPEG, BMP, TIFF) and DICOM into numpy arrays.

* :func:`read_image` returns float32 ``(H, W, channels)`` scaled to ``[0, 1]``.
* :func:`read_mask` returns an integer label map ``(H, W)`` with the values as stored.
* :func:`resize_image` / :func:`resize_mask` resize with cubic / nearest-neighbour interpolation.

Every problem with a file raises :class:`umsrep.errors.DataError` with a one-line message that starts with the path.

A file whose header declares more than :func:`max_image_pixels` pixels (default 100 megapixels,
``$UMSREP_MAX_IMAGE_PIXELS`` or ``umsrep --max-image-pixels``) is refused before it is decoded: PNG, JPEG, BMP and
TIFF dimensions are read from the header (:func:`header_size`), DICOM from Rows x Columns x frames.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from umsrep.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")
DICOM_EXTENSIONS = (".dcm", ".dicom")

# cv2.resize handles these dtypes; others are resized with the equivalent numpy indexing.
_CV2_RESIZE_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_PIXELS_ENV = "UMSREP_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The cap on pixels per input image: ``$UMSREP_MAX_IMAGE_PIXELS`` (set by ``umsrep --max-image-pixels``) or
    100 megapixels."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    try:
        return int(value) if value else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise DataError(f"${MAX_PIXELS_ENV}: expected a whole number of pixels, got {value!r}") from None


def _png_size(head: bytes):
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    return None


def _bmp_size(head: bytes):
    if head[:2] != b"BM" or len(head) < 26:
        return None
    if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", head[18:22])
    w, h = struct.unpack("<ii", head[18:26])
    return abs(w), abs(h)


def _jpeg_size(fh):
    fh.seek(2)
    while True:
        b = fh.read(1)
        while b and b != b"\xff":
            b = fh.read(1)
        while b == b"\xff":
            b = fh.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        length = fh.read(2)
        if len(length) < 2:
            return None
        n = struct.unpack(">H", length)[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):  # SOFn
            sof = fh.read(5)
            if len(sof) < 5:
                return None
            h, w = struct.unpack(">HH", sof[1:5])
            return w, h
        if marker == 0xDA or n < 2:  # start of scan before any frame header: not a valid JPEG
            return None
        fh.seek(n - 2, 1)


def _tiff_size(fh, head: bytes):
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or struct.unpack(order + "H", head[2:4])[0] != 42:
        return None
    fh.seek(struct.unpack(order + "I", head[4:8])[0])
    count = fh.read(2)
    if len(count) < 2:
        return None
    size = {}
    for _ in range(min(struct.unpack(order + "H", count)[0], 4096)):
        entry = fh.read(12)
        if len(entry) < 12:
            break
        tag, typ = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            size[tag] = struct.unpack(order + ("H" if typ == 3 else "I"), entry[8:10] if typ == 3 else entry[8:12])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def header_size(path):
    """``(width, height)`` declared by a PNG, JPEG, BMP or TIFF header, or None (other formats, unreadable header)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return _png_size(head)
            if head[:2] == b"BM":
                return _bmp_size(head)
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(fh)
            if head[:2] in (b"II", b"MM"):
                return _tiff_size(fh, head)
    except (OSError, struct.error):
        return None
    return None


def _check_pixels(path, n_pixels, what, how):
    cap = max_image_pixels()
    if n_pixels > cap:
        raise DataError(f"{path}: {what} has {n_pixels:,} pixels ({how}), more than the limit of {cap:,}; refused "
                        f"before decoding (raise it with --max-image-pixels or ${MAX_PIXELS_ENV})")


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _reason(exc: BaseException) -> str:
    msg = _one_line(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def is_dicom(path) -> bool:
    """True when the file name ends in .dcm/.dicom or the file carries the DICOM magic ``DICM`` at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


# --------------------------------------------------------------------------------------------------------------------
# Raw decoding


def _decode_raster(path: Path, what: str) -> np.ndarray:
    """Decode a raster file with OpenCV (IMREAD_UNCHANGED); arrays come back as stored (BGR(A) for colour)."""
    size = header_size(path)
    if size is not None:
        _check_pixels(path, size[0] * size[1], what, f"{size[0]} x {size[1]} in its header")
    try:
        # np.fromfile + imdecode is cv2.imread without its trouble with non-ASCII paths on some platforms.
        buf = np.fromfile(str(path), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read {what} ({_reason(exc)})") from None
    if buf.size == 0:
        raise DataError(f"{path}: cannot read {what} (empty file)")
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"{path}: cannot read {what} (OpenCV: {_one_line(exc)})") from None
    if arr is None:
        raise DataError(f"{path}: cannot read {what} (OpenCV could not decode the file)")
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: cannot read {what} (unexpected array shape {arr.shape})")
    return arr


def _ensure_transfer_syntax(ds) -> None:
    """A raw data set (no file meta) read with ``force=True`` has no Transfer Syntax UID: infer it from the encoding."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _read_dicom(path: Path, what: str):
    """Return ``(dataset, pixel_array)`` of a single-frame DICOM file."""
    import pydicom  # imported lazily: only needed for DICOM data

    try:
        try:
            ds = pydicom.dcmread(str(path))
        except pydicom.errors.InvalidDicomError:
            # A raw data set without preamble / file meta (allowed for .dcm files): retry without the header check.
            ds = pydicom.dcmread(str(path), force=True)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise DataError(f"{path}: cannot read {what} (DICOM file has no pixel data)")
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            frames = 1
        if frames > 1:
            raise DataError(f"{path}: multi-frame DICOM is not supported ({frames} frames)")
        try:
            rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        except (TypeError, ValueError):
            rows = cols = 0
        _check_pixels(path, rows * cols * frames, what, f"Rows {rows} x Columns {cols}")
        _ensure_transfer_syntax(ds)
        arr = ds.pixel_array
    except DataError:
        raise
    except Exception as exc:  # pydicom raises many types (InvalidDicomError, ValueError, AttributeError, ...)
        raise DataError(f"{path}: cannot read {what} ({_reason(exc)})") from None
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: cannot read {what} (unexpected DICOM pixel array shape {arr.shape})")
    return ds, arr


# --------------------------------------------------------------------------------------------------------------------
# Images


def _minmax(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, np.nan)
        if not finite.any():
            return np.zeros(arr.shape, np.float32)
    lo, hi = np.nanmin(arr), np.nanmax(arr)
    if not hi > lo:
        return np.zeros(arr.shape, np.float32)
    out = (arr - lo) / (hi - lo)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def _scale_raster(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    # float, signed and other integer images: min-max (no fixed range is known)
    return _minmax(arr)


def _to_channels(img: np.ndarray, channels: int, rgb: bool) -> np.ndarray:
    """``img``: float32 (H, W) or (H, W, C), colour order RGB(A) if ``rgb`` else BGR(A) -> (H, W, channels)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        c = img.shape[2]
        if c == 2:  # gray + alpha
            img = img[:, :, 0]
        elif c >= 3:
            img = np.ascontiguousarray(img[:, :, :3])
            if not rgb:
                img = img[:, :, ::-1]  # BGR -> RGB
            img = np.ascontiguousarray(img, dtype=np.float32)
    if img.ndim == 2:
        gray = np.ascontiguousarray(img, dtype=np.float32)
        if channels == 1:
            return gray[:, :, None]
        return np.repeat(gray[:, :, None], channels, axis=2)
    if channels == 3:
        return img
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]


def read_image(path, channels: int = 1) -> np.ndarray:
    """Read an image file as float32 ``(H, W, channels)`` in ``[0, 1]``.

    Raster files: 8-bit / 255, 16-bit / 65535, anything else min-max; BGR(A) becomes RGB, alpha is dropped.
    DICOM: modality LUT, VOI LUT / window, MONOCHROME1 inverted, then min-max (a constant image gives zeros).
    ``channels=1`` turns colour into luminance; ``channels=3`` replicates gray.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: cannot read image ({'not a file' if path.exists() else 'no such file'})")
    if is_dicom(path):
        ds, arr = _read_dicom(path, "image")
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        try:
            if samples == 1 and arr.ndim == 2:
                from pydicom.pixels import apply_modality_lut, apply_voi_lut

                arr = apply_modality_lut(arr, ds)
                arr = apply_voi_lut(arr, ds)
                img = _minmax(arr)
                if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" and img.max() > 0:
                    img = 1.0 - img
            else:
                img = _minmax(arr)  # RGB (pydicom already converts YBR to RGB)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None
        return _to_channels(img, channels, rgb=True)
    arr = _decode_raster(path, "image")
    return _to_channels(_scale_raster(arr), channels, rgb=False)


# --------------------------------------------------------------------------------------------------------------------
# Masks


def read_mask(path) -> np.ndarray:
    """Read a mask file as an integer label map ``(H, W)`` with values as stored (0/255, 0/1 or class ids).

    Colour masks are accepted only when all colour channels are equal (alpha is ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: cannot read mask ({'not a file' if path.exists() else 'no such file'})")
    if is_dicom(path):
        _, arr = _read_dicom(path, "mask")
    else:
        arr = _decode_raster(path, "mask")
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]  # drop alpha
        elif arr.ndim == 3 and arr.shape[2] == 2:
            arr = arr[:, :, :1]  # gray + alpha
    if arr.ndim == 3:
        first = arr[:, :, 0]
        if arr.shape[2] > 1 and not all(np.array_equal(first, arr[:, :, c]) for c in range(1, arr.shape[2])):
            raise DataError(
                f"{path}: colour mask with unequal channels is not a label map (save masks as single-channel class ids)"
            )
        arr = first
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise DataError(f"{path}: mask has non-integer values (expected a label map)")
        arr = arr.astype(np.int32)
    elif arr.dtype.kind not in "iu":
        raise DataError(f"{path}: cannot read mask (unsupported pixel type {arr.dtype})")
    return arr


# --------------------------------------------------------------------------------------------------------------------
# Resizing


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def resize_image(img: np.ndarray, size) -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, C)`` to ``size=(height, width)`` (cubic); float32 ``(h, w, C)`` in [0, 1]."""
    h, w = _check_size(size)
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    if img.shape[:2] == (h, w):
        out = img.copy()
    else:
        c = img.shape[2]
        if c <= 4:
            out = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        else:
            out = np.stack([cv2.resize(img[:, :, i], (w, h), interpolation=cv2.INTER_CUBIC) for i in range(c)], axis=2)
        if out.ndim == 2:
            out = out[:, :, None]
    return np.clip(out, 0.0, 1.0, out=out)


def resize_mask(mask: np.ndarray, size) -> np.ndarray:
    """Resize an ``(H, W)`` label map to ``size=(height, width)`` with nearest-neighbour; dtype and values are kept."""
    h, w = _check_size(size)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if mask.shape == (h, w):
        return mask.copy()
    if mask.dtype.type in _CV2_RESIZE_DTYPES:
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    # same sampling rule as cv2.INTER_NEAREST: src = floor(dst * src_size / dst_size)
    rows = np.minimum((np.arange(h) * (mask.shape[0] / h)).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum((np.arange(w) * (mask.shape[1] / w)).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


# ------------------------------------------------------------------------------------------- fitting to the model
#: how an image meets the model's input size: ``stretch`` (resize each axis to the size; the aspect ratio changes) or
#: ``letterbox`` (scale to fit keeping the aspect ratio, centred, zero padding)
RESIZE_MODES = ("stretch", "letterbox")


def placement(orig_hw, size, mode="stretch") -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of an ``orig_hw`` image's content inside the model-size frame ``size``."""
    h, w = _check_size(size)
    if mode == "stretch":
        return 0, 0, h, w
    if mode != "letterbox":
        raise ValueError(f"resize mode {mode!r}: expected one of {list(RESIZE_MODES)}")
    oh, ow = (int(v) for v in orig_hw)
    scale = min(h / oh, w / ow)
    ch, cw = max(1, min(h, round(oh * scale))), max(1, min(w, round(ow * scale)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def fit_image(img: np.ndarray, size, mode="stretch") -> np.ndarray:
    """An image at the model's ``size`` (:func:`resize_image`, or scaled and padded with ``letterbox``)."""
    if mode == "stretch":
        return resize_image(img, size)
    img = np.asarray(img, np.float32)
    img = img[:, :, None] if img.ndim == 2 else img
    top, left, ch, cw = placement(img.shape[:2], size, mode)
    out = np.zeros((*_check_size(size), img.shape[2]), np.float32)
    out[top:top + ch, left:left + cw] = resize_image(img, (ch, cw))
    return out


def fit_mask(mask: np.ndarray, size, mode="stretch") -> np.ndarray:
    """A label map at the model's ``size``, placed as :func:`fit_image` places its image (padding = 0)."""
    if mode == "stretch":
        return resize_mask(mask, size)
    mask = np.asarray(mask)
    top, left, ch, cw = placement(mask.shape, size, mode)
    out = np.zeros(_check_size(size), mask.dtype)
    out[top:top + ch, left:left + cw] = resize_mask(mask, (ch, cw))
    return out


def to_original(label_map: np.ndarray, orig_hw, mode="stretch") -> np.ndarray:
    """A model-size label map back on the original image's pixel grid ``orig_hw``: the content region (without
    letterbox padding) resized with nearest-neighbour."""
    label_map = np.asarray(label_map)
    top, left, ch, cw = placement(orig_hw, label_map.shape[:2], mode)
    return resize_mask(label_map[top:top + ch, left:left + cw], tuple(int(v) for v in orig_hw))


def image_to_original(img: np.ndarray, orig_hw, mode="stretch") -> np.ndarray:
    """A model-size image (e.g. a denoised one) back on the original pixel grid: content region, cubic resize."""
    img = np.asarray(img, np.float32)
    top, left, ch, cw = placement(orig_hw, img.shape[:2], mode)
    return resize_image(img[top:top + ch, left:left + cw], tuple(int(v) for v in orig_hw))
