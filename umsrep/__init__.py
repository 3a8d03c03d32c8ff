"""umsrep: Unified Modality-Specific Representations for medical image analysis (Keras 3).

Importing the package is cheap: TensorFlow/Keras are imported only by the modules that need them.
"""

__version__ = "0.1.0"
