from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="umsrep",
    version="0.1.0",
    description="Unified Modality-Specific Representations for medical image analysis (Keras 3 / TensorFlow)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["umsrep", "umsrep.*"]),
    install_requires=[
        "tensorflow>=2.16",  # Keras 3 era; CPU wheel (tensorflow-cpu) works the same
        "keras>=3.3",
        "keras-tuner>=1.4.7",
        "tensorboard>=2.16",  # TF >= 2.21 no longer pulls it in
        "opencv-python-headless>=4.8",
        "pyyaml>=6.0",
        "pydantic>=2.5",
        "numpy>=1.26",
        "scikit-learn>=1.3",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "markdown>=3.5",  # report.html from report.md
        "rich>=13.0",
        "pydicom>=3.0",  # pydicom.pixels
        "pylibjpeg>=2.0",  # JPEG-compressed DICOM
        "pylibjpeg-libjpeg>=2.1",
    ],
    extras_require={
        # umsrep export: --format onnx, and the TFLite check through LiteRT (tf.lite.Interpreter is deprecated)
        "export": ["tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.18", "ai-edge-litert>=1.2"],
        "test": ["pytest>=7.4", "ruff>=0.5", "umsrep[export]"],
        # bench/train_throughput.py's and profile_step.py's PyTorch cases, run in a process of their own (never next to
        # TensorFlow). Tested: 2.13 (CPU build) and 2.14 (PyPI's default Linux wheel, CUDA libraries + triton). The
        # CPU build (no CUDA, no triton) is enough and much smaller: docs/performance.md says how to install it.
        "bench": ["torch>=2.13,<2.15"],
    },
    entry_points={"console_scripts": ["umsrep=umsrep.cli:run"]},
)
