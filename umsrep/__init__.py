"""umsrep: Unified Modality-Specific Representations for medical image analysis (Keras 3).

Importing the package is cheap: TensorFlow/Keras are imported only by the modules that need them. It registers
umsrep's custom Keras layers (``umsrep>Normalize``, ``umsrep>FusedBatchNormalization``, ...) with Keras — now if
Keras is already imported, else as soon as it is — so after ``import umsrep`` a saved ``model.keras`` or
``encoder.keras`` loads with plain ``keras.models.load_model(path)``.
"""

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


def _register():
    from umsrep.models import register_keras_objects

    register_keras_objects()


class _RegisterWhenKerasLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``keras`` is first imported, it lets the normal finders load it and then
    registers umsrep's layers (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


if sys.modules.get("keras") is not None:  # (None: an import of keras was blocked on purpose)
    _register()
elif not any(isinstance(f, _RegisterWhenKerasLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())
