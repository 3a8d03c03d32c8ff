"""Shared test helpers: where the real (non-repository) data sets live, and a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

from umsrep.paths import data_root  # the one place that knows UMSREP_DATA and its default

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "data_root"]


@pytest.fixture
def real_data() -> Path:
    """The real-data root; skips the test when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}; set UMSREP_DATA to the shared data folder")
    return root


TINY_RECIPE = """
name: tiny
seed: 3
modality: ultrasound
data:
  synthetic: {kind: ultrasound, n: 36, size: 32, seed: 1, per_patient: 2}
  image_size: 32
  group_by: patient
  split: {test: 0.25, val: 0.2}
representation:
  kind: denoising_autoencoder
  filters: [8, 16, 16, 32]
  noise: [{kind: gaussian, levels: [0.1]}, {kind: speckle, levels: [0.2]}]
  epochs: 2
  batch_size: 8
tasks:
  lesion: {type: segmentation, classes: [lesion], epochs: 2, batch_size: 8}
  diagnosis: {type: classification, classes: [benign, malignant, normal], epochs: 2, batch_size: 8,
              head: {units: 16}}
derive:
  refer: 'diagnosis == "malignant" or (diagnosis == "benign" and area(lesion) > 0.05)'
  discharge: 'not refer and p(diagnosis, "normal") >= 0.4'
output: {tensorboard: true}
"""


@pytest.fixture(scope="session")
def tiny_recipe_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
    p.write_text(TINY_RECIPE)
    return p


@pytest.fixture(scope="session")
def tiny_run(tiny_recipe_file, tmp_path_factory) -> Path:
    """One tiny `umsrep fit` through the real CLI, shared by the end-to-end tests."""
    from umsrep.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out)]) == 0
    return out


def write_dicom(path, arr):
    """A minimal MONOCHROME2 16-bit (12 stored) DICOM file holding ``arr``; skips when pydicom is absent."""
    pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = arr.astype("uint16").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
