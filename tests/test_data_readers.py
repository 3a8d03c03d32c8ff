"""Readers (raster + DICOM), resizing and the folder data-set loader, on tiny generated files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from umsrep.data.dataset import LoadedData, Skipped, load_dataset
from umsrep.data.readers import IMAGE_EXTENSIONS, read_image, read_mask, resize_image, resize_mask
from umsrep.errors import DataError

# ---------------------------------------------------------------------------------------------------------------------
# helpers


def write_dicom(path, arr, *, photometric="MONOCHROME2", signed=False, slope=None, intercept=None, window=None,
                frames=None):
    """Write ``arr`` as an uncompressed (Explicit VR Little Endian) DICOM file with a proper preamble/file meta."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    arr = np.ascontiguousarray(arr)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    rgb = photometric == "RGB"
    if frames:
        ds.NumberOfFrames = frames
        rows, cols = arr.shape[1:3]
    else:
        rows, cols = arr.shape[:2]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = arr.dtype.itemsize * 8
    ds.HighBit = arr.dtype.itemsize * 8 - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = arr.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def ramp(h=6, w=8, lo=10, hi=200, dtype=np.uint8):
    return np.linspace(lo, hi, h * w).reshape(h, w).astype(dtype)


# ---------------------------------------------------------------------------------------------------------------------
# raster readers


def test_extensions():
    assert set(IMAGE_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}


def test_png_8bit_gray(tmp_path):
    arr = ramp()
    cv2.imwrite(str(tmp_path / "a.png"), arr)
    img = read_image(tmp_path / "a.png")
    assert img.shape == (6, 8, 1) and img.dtype == np.float32
    np.testing.assert_allclose(img[:, :, 0], arr / 255.0, atol=1e-6)


def test_png_16bit(tmp_path):
    arr = ramp(lo=100, hi=60000, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), arr)
    img = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(img[:, :, 0], arr / 65535.0, atol=1e-6)


def test_tiff_16bit_and_float(tmp_path):
    arr16 = ramp(lo=0, hi=1000, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.tif"), arr16)
    np.testing.assert_allclose(read_image(tmp_path / "a.tif")[:, :, 0], arr16 / 65535.0, atol=1e-6)
    arrf = ramp(lo=-5, hi=7, dtype=np.float32)
    cv2.imwrite(str(tmp_path / "f.tiff"), arrf)
    img = read_image(tmp_path / "f.tiff")
    np.testing.assert_allclose(img[:, :, 0], (arrf + 5) / 12, atol=1e-6)
    assert img.min() == 0 and img.max() == 1


def test_jpg_gray(tmp_path):
    arr = np.full((16, 16), 128, np.uint8)
    arr[:, 8:] = 200
    cv2.imwrite(str(tmp_path / "a.jpg"), arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    img = read_image(tmp_path / "a.jpg")
    assert img.shape == (16, 16, 1) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    assert abs(img[4, 2, 0] - 128 / 255) < 0.03 and abs(img[4, 13, 0] - 200 / 255) < 0.03


def test_bmp_colour_bgr_to_rgb_and_luminance(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[:, :, 2] = 255  # pure red in BGR order
    cv2.imwrite(str(tmp_path / "red.bmp"), bgr)
    rgb = read_image(tmp_path / "red.bmp", channels=3)
    assert rgb.shape == (4, 5, 3)
    np.testing.assert_allclose(rgb[0, 0], [1.0, 0.0, 0.0])
    gray = read_image(tmp_path / "red.bmp", channels=1)
    assert gray.shape == (4, 5, 1)
    np.testing.assert_allclose(gray[0, 0, 0], 0.299, atol=1e-3)


def test_png_bgra_alpha_dropped(tmp_path):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 0] = 255  # blue
    bgra[..., 3] = 7  # alpha: ignored
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    img = read_image(tmp_path / "a.png", channels=3)
    assert img.shape == (3, 3, 3)
    np.testing.assert_allclose(img[1, 1], [0.0, 0.0, 1.0])


def test_gray_to_three_channels(tmp_path):
    arr = ramp()
    cv2.imwrite(str(tmp_path / "a.png"), arr)
    img = read_image(tmp_path / "a.png", channels=3)
    assert img.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_allclose(img[:, :, c], arr / 255.0, atol=1e-6)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DataError, match="garbage.png: cannot read image") as e:
        read_image(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="missing.png: cannot read image"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(DataError, match="garbage.png: cannot read mask"):
        read_mask(bad)


# ---------------------------------------------------------------------------------------------------------------------
# DICOM


def test_dicom_8bit_monochrome2(tmp_path):
    arr = ramp(lo=20, hi=220)
    img = read_image(write_dicom(tmp_path / "a.dcm", arr))
    assert img.shape == (6, 8, 1) and img.dtype == np.float32
    np.testing.assert_allclose(img[:, :, 0], (arr - 20.0) / 200.0, atol=1e-6)


def test_dicom_16bit_monochrome2(tmp_path):
    arr = ramp(lo=100, hi=4100, dtype=np.uint16)
    img = read_image(write_dicom(tmp_path / "a.dicom", arr))
    np.testing.assert_allclose(img[:, :, 0], (arr - 100.0) / 4000.0, atol=1e-6)


def test_dicom_monochrome1_inverted(tmp_path):
    arr = ramp(lo=0, hi=1000, dtype=np.uint16)
    img = read_image(write_dicom(tmp_path / "m1.dcm", arr, photometric="MONOCHROME1"))
    np.testing.assert_allclose(img[:, :, 0], 1.0 - arr / 1000.0, atol=1e-6)


def test_dicom_rescale_and_window(tmp_path):
    # raw -> HU with intercept -1024: [-1024, -24, 0, 24, 76, 976]; window centre 0 width 100
    raw = np.array([[0, 1000, 1024], [1048, 1100, 2000]], np.int16)
    path = write_dicom(tmp_path / "ct.dcm", raw, signed=True, slope=1, intercept=-1024, window=(0, 100))
    img = read_image(path)[:, :, 0]
    assert img[0, 0] == 0 and img[1, 2] == 1 and img[1, 1] == 1  # below / above the window
    assert 0.4 < img[0, 2] < 0.6  # HU 0 = window centre (would be 1 without the modality LUT)
    assert 0 < img[0, 1] < img[0, 2] < img[1, 0] < 1


def test_dicom_rescale_negative_slope(tmp_path):
    raw = ramp(lo=0, hi=500, dtype=np.uint16)
    img = read_image(write_dicom(tmp_path / "s.dcm", raw, slope=-2, intercept=50))
    np.testing.assert_allclose(img[:, :, 0], 1.0 - raw / 500.0, atol=1e-6)


def test_dicom_rgb(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[0, 0] = 0
    path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    img = read_image(path, channels=3)
    assert img.shape == (4, 4, 3)
    np.testing.assert_allclose(img[1, 1], [1.0, 0.0, 0.0])
    gray = read_image(path, channels=1)
    np.testing.assert_allclose(gray[1, 1, 0], 0.299, atol=1e-3)


def test_dicom_detected_by_magic_and_constant(tmp_path):
    path = write_dicom(tmp_path / "no_extension", np.full((3, 3), 77, np.uint8))
    img = read_image(path)
    assert img.shape == (3, 3, 1) and not img.any()  # constant image -> zeros


def test_dicom_raw_dataset_without_file_meta(tmp_path):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 2, 2, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes([0, 1, 2, 3])
    ds.save_as(str(tmp_path / "raw.dcm"), implicit_vr=True, little_endian=True, enforce_file_format=False)
    np.testing.assert_allclose(read_image(tmp_path / "raw.dcm")[:, :, 0], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    np.testing.assert_array_equal(read_mask(tmp_path / "raw.dcm"), [[0, 1], [2, 3]])


def test_dicom_multiframe_rejected(tmp_path):
    frames = np.stack([ramp(), ramp(), ramp()])
    path = write_dicom(tmp_path / "cine.dcm", frames, frames=3)
    with pytest.raises(DataError, match=r"cine.dcm: multi-frame DICOM is not supported \(3 frames\)"):
        read_image(path)


def test_dicom_corrupt(tmp_path):
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match="bad.dcm: cannot read image"):
        read_image(path)


def test_dicom_mask_values_as_stored(tmp_path):
    arr = np.array([[0, 1, 2], [3, 0, 1]], np.uint8)
    mask = read_mask(write_dicom(tmp_path / "m.dcm", arr))
    np.testing.assert_array_equal(mask, arr)


# ---------------------------------------------------------------------------------------------------------------------
# masks and resizing


def test_read_mask_values_kept(tmp_path):
    m255 = np.zeros((5, 5), np.uint8)
    m255[1:3, 1:3] = 255
    cv2.imwrite(str(tmp_path / "a.png"), m255)
    out = read_mask(tmp_path / "a.png")
    assert out.shape == (5, 5) and out.dtype.kind in "iu"
    np.testing.assert_array_equal(out, m255)
    ids = np.arange(25, dtype=np.uint16).reshape(5, 5) % 4
    cv2.imwrite(str(tmp_path / "ids.png"), ids)
    np.testing.assert_array_equal(read_mask(tmp_path / "ids.png"), ids)


def test_read_mask_colour(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[0, 0] = 255
    cv2.imwrite(str(tmp_path / "equal.png"), np.dstack([m, m, m]))
    out = read_mask(tmp_path / "equal.png")
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out, m)
    cv2.imwrite(str(tmp_path / "unequal.png"), np.dstack([m, m * 0, m]))
    with pytest.raises(DataError, match="unequal.png: colour mask with unequal channels"):
        read_mask(tmp_path / "unequal.png")


def test_resize_image_cubic_clipped():
    img = np.zeros((8, 8), np.float32)
    img[:, 4:] = 1.0  # a step edge: cubic overshoots, result must be clipped
    out = resize_image(img, (16, 12))
    assert out.shape == (16, 12, 1) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    expected = np.clip(cv2.resize(img, (12, 16), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(out[:, :, 0], expected, atol=1e-6)
    rgb = np.random.default_rng(0).random((10, 9, 3)).astype(np.float32)
    assert resize_image(rgb, (5, 4)).shape == (5, 4, 3)


def test_resize_mask_nearest_keeps_values():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, size=(37, 23)).astype(np.uint8)
    for size in [(64, 64), (10, 7)]:
        out = resize_mask(mask, size)
        assert out.shape == size and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 1, 2, 3}
    big = (mask.astype(np.int64) * 1000)  # dtype cv2 cannot resize: same nearest rule
    np.testing.assert_array_equal(resize_mask(big, (10, 7)), resize_mask(mask, (10, 7)).astype(np.int64) * 1000)
    m255 = (mask > 1).astype(np.uint8) * 255
    assert set(np.unique(resize_mask(m255, (50, 50)))) == {0, 255}


# ---------------------------------------------------------------------------------------------------------------------
# load_dataset


def make_dataset(root, size=(20, 16)):
    """images a.png b.jpg c.tif d.bmp (d has no mask); masks a.png b.bmp c.png; labels.csv with a patient column."""
    h, w = size
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for name in ["a.png", "b.jpg", "c.tif", "d.bmp"]:
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 256, size=(h, w)).astype(np.uint8))
    for name, value in [("a.png", 1), ("b.bmp", 2), ("c.png", 255)]:
        m = np.zeros((h, w), np.uint8)
        m[2:8, 3:9] = value
        cv2.imwrite(str(root / "masks" / name), m)
    (root / "labels.csv").write_text(
        "filename,label,patient\na.png,benign,p1\nb.jpg,malignant,p1\nc.tif,benign,p2\n"
    )  # d.bmp has no row
    return root


def test_load_dataset_basic(tmp_path):
    root = make_dataset(tmp_path / "ds")
    data = load_dataset(root, masks="masks", labels="labels.csv", image_size=(8, 10), group_by="patient")
    assert isinstance(data, LoadedData) and len(data) == 4
    assert data.names == ["a", "b", "c", "d"]
    assert data.files[1].endswith("b.jpg")
    assert data.images.shape == (4, 8, 10, 1) and data.images.dtype == np.float32
    assert 0 <= data.images.min() and data.images.max() <= 1
    assert data.masks.shape == (4, 8, 10) and data.masks.dtype == np.int32
    assert data.has_mask.tolist() == [True, True, True, False]
    assert set(np.unique(data.masks[0])) == {0, 1} and set(np.unique(data.masks[1])) == {0, 2}
    assert set(np.unique(data.masks[2])) == {0, 255} and (data.masks[3] == -1).all()
    assert data.labels == ["benign", "malignant", "benign", None]
    assert data.groups == ["p1", "p1", "p2", None]
    assert data.skipped == []


def test_load_dataset_no_masks_rgb_absolute_paths(tmp_path):
    root = make_dataset(tmp_path / "ds")
    data = load_dataset(tmp_path, images=root / "images", labels=root / "labels.csv", channels=3,
                        image_size=(4, 4), workers=1)
    assert data.masks is None and not data.has_mask.any()
    assert data.images.shape == (4, 4, 4, 3)
    assert data.groups == [None] * 4


def bad_case(root, case):
    """Add one bad file to a generated data set; return (file name expected in the message, dropped stems, n left)."""
    h, w = 20, 16
    if case == "mask_without_image":
        cv2.imwrite(str(root / "masks" / "zzz.png"), np.zeros((h, w), np.uint8))
        return "zzz.png", [], 4
    if case == "unreadable":
        (root / "images" / "e.png").write_bytes(b"\x89PNG garbage bytes")
        return "e.png", [], 4  # e never becomes a sample
    if case == "size_mismatch":
        cv2.imwrite(str(root / "masks" / "c.png"), np.zeros((h + 3, w), np.uint8))
        return "c.png", ["c"], 3
    if case == "csv_row_without_image":
        with open(root / "labels.csv", "a") as fh:
            fh.write("ghost.png,benign,p9\n")
        return "ghost.png", [], 4
    if case == "duplicate_stem":
        cv2.imwrite(str(root / "images" / "a.jpg"), np.zeros((h, w), np.uint8))
        return "a.jpg", ["a"], 3
    raise AssertionError(case)


CASES = ["mask_without_image", "unreadable", "size_mismatch", "csv_row_without_image", "duplicate_stem"]


@pytest.mark.parametrize("case", CASES)
def test_bad_file_error_mode(tmp_path, case):
    root = make_dataset(tmp_path / "ds")
    name, _, _ = bad_case(root, case)
    with pytest.raises(DataError) as e:
        load_dataset(root, masks="masks", labels="labels.csv", image_size=(8, 8))
    msg = str(e.value)
    assert name in msg and "\n" not in msg
    if case == "size_mismatch":
        assert "mask size 23x16 differs from image size 20x16" in msg


@pytest.mark.parametrize("case", CASES)
def test_bad_file_skip_mode(tmp_path, case):
    root = make_dataset(tmp_path / "ds")
    name, dropped, n_left = bad_case(root, case)
    data = load_dataset(root, masks="masks", labels="labels.csv", image_size=(8, 8), on_bad_file="skip")
    assert len(data) == n_left == data.images.shape[0] == data.masks.shape[0] == len(data.labels)
    assert not set(dropped) & set(data.names)
    assert data.skipped and all(isinstance(s, Skipped) for s in data.skipped)
    assert any(name in s.file or name in s.reason for s in data.skipped)
    if case == "unreadable":
        assert "e" not in data.names
    if case == "csv_row_without_image":
        assert data.skipped[0].file.endswith("labels.csv") and "row 5" in data.skipped[0].reason
    if case == "duplicate_stem":
        assert {s.file.rsplit("/", 1)[-1] for s in data.skipped} == {"a.png", "a.jpg"}


def test_mask_paired_across_extensions(tmp_path):
    root = make_dataset(tmp_path / "ds")  # b.jpg <-> b.bmp, c.tif <-> c.png
    data = load_dataset(root, masks="masks", image_size=(20, 16))
    assert data.has_mask[data.names.index("b")] and data.has_mask[data.names.index("c")]
    assert set(np.unique(data.masks[data.names.index("b")])) == {0, 2}


def test_group_by_missing_column(tmp_path):
    root = make_dataset(tmp_path / "ds")
    with pytest.raises(DataError, match=r"labels\.csv: no column 'subject'.*filename, label, patient"):
        load_dataset(root, labels="labels.csv", group_by="subject")


def test_missing_folders_and_csv(tmp_path):
    root = make_dataset(tmp_path / "ds")
    with pytest.raises(DataError, match="nope"):
        load_dataset(root, images="nope")
    with pytest.raises(DataError, match="no_masks"):
        load_dataset(root, masks="no_masks")
    with pytest.raises(DataError, match="missing.csv"):
        load_dataset(root, labels="missing.csv")


def test_zero_usable_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no usable images"):
        load_dataset(tmp_path, on_bad_file="skip")
    (tmp_path / "images" / "x.png").unlink()
    with pytest.raises(DataError, match="no image files"):
        load_dataset(tmp_path)


def test_dicom_in_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_dicom(tmp_path / "images" / "s1.dcm", ramp(lo=0, hi=1000, dtype=np.uint16))
    write_dicom(tmp_path / "masks" / "s1.dcm", (ramp() > 100).astype(np.uint8))
    data = load_dataset(tmp_path, masks="masks", image_size=(6, 8))
    assert data.images[0].max() == pytest.approx(1.0) and set(np.unique(data.masks[0])) == {0, 1}
