"""Encoders and heads, one package per architecture (``umsrep/models/<architecture>/``, keras-hub style).

An architecture package declares, in its ``__init__.py`` (no TensorFlow there, so recipe validation stays cheap):

- its settings: a :class:`umsrep.settings.EncoderSettings` subclass with ``kind: Literal["<name>"]`` and the
  ``representation`` fields only it reads, and a :class:`umsrep.settings.HeadSettings` subclass per head;
- its registrations: ``ENCODERS.register(name, Encoder(Settings, "<module>:<builder>", heads={task type: own
  head}))`` and ``HEADS.register(name, Head(Settings, "<module>:<builder>", task_types=(...)))``;

and keeps the Keras code in modules next to it (``encoder.py``, ``heads.py``), imported only when a model is
built. Every package under ``umsrep/models/`` is discovered (imported) on the first registry look-up, so a new
architecture is a new folder. Shared blocks are in :mod:`umsrep.models.blocks`, the standard heads (decoder,
GAP classifier, denoising decoder) in :mod:`umsrep.models.heads`, and the wiring of heads to an encoder's
feature pyramid in :mod:`umsrep.models.pyramid`.

A builder receives only its own settings: ``build(settings, image: ImageSpec, name)`` for an encoder (a
``keras.Model`` mapping an image in [0, 1] to its feature pyramid, shallowest first), ``build(settings, spec,
input_size, *, name, n_classes)`` for a head (a ``keras.Model`` named ``head_<name>`` whose inputs are the
pyramid levels it reads, named ``p<level>``).

Importing :mod:`umsrep` registers the custom Keras layers (:func:`register_keras_objects`), so a saved
``model.keras`` loads with plain ``keras.models.load_model``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from umsrep.registry import ENCODERS, HEADS

__all__ = ["ENCODERS", "HEADS", "Encoder", "Head", "ImageSpec", "build_encoder", "build_head", "own_head",
           "resolve_head", "check_head", "register_keras_objects"]


def _resolve(path: str):
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ImageSpec:
    """What every encoder's input layers need: shape (H, W, C), normalisation and its statistics, low-pass."""

    shape: Tuple[int, int, int]
    normalization: str = "dataset_zscore"
    mean: float = 0.0
    std: float = 1.0
    lowpass_sigma: Optional[float] = None


@dataclass(frozen=True)
class Encoder:
    """A registered encoder architecture: its settings class, its builder (``"module:function"``, imported when
    used; None for encoders that are loaded, not built) and its own head per task type (``head.kind: auto``)."""

    Settings: type
    builder: Optional[str]
    heads: Dict[str, str] = None

    def own_head(self, task_type: str) -> Optional[str]:
        return (self.heads or {}).get(task_type)

    def build(self, image, settings=None, name: str = "encoder", *, normalization="dataset_zscore", mean=0.0,
              std=1.0, lowpass_sigma=None, **fields):
        """``image``: an :class:`ImageSpec`, or a shape (H, W, C) completed by ``normalization``, ``mean``, ``std``
        and ``lowpass_sigma``; ``settings`` (default: the defaults, updated with ``fields``, validated)."""
        if self.builder is None:
            raise ValueError(f"{self.Settings.__name__}: this encoder is loaded, not built")
        if not isinstance(image, ImageSpec):
            image = ImageSpec(tuple(image), normalization, mean, std, lowpass_sigma)
        settings = settings if settings is not None else self.Settings(**fields)
        return _resolve(self.builder)(settings, image, name)


@dataclass(frozen=True)
class Head:
    """A registered head: its settings class, its builder (``"module:function"``), the task types it serves,
    (optionally) the only encoder kinds it attaches to (None: any encoder's feature pyramid), and whether
    ``head.kind: auto`` picks it for its task types on encoders without a head of their own (``default``; one
    head per task type)."""

    Settings: type
    builder: str
    task_types: Tuple[str, ...]
    encoders: Optional[Tuple[str, ...]] = None
    default: bool = False

    def build(self, spec, input_size, *, name: str, n_classes: int = 1, settings=None, image_channels: int = 1,
              **fields):
        """``image_channels`` reaches builders that take it: heads that read the image itself (input ``image``)."""
        settings = settings if settings is not None else self.Settings(**fields)
        builder = _resolve(self.builder)
        extra = ({"image_channels": int(image_channels)}
                 if "image_channels" in inspect.signature(builder).parameters else {})
        return builder(settings, spec, tuple(input_size), name=name, n_classes=n_classes, **extra)


def build_encoder(settings, image: ImageSpec, name: str = "encoder"):
    """The encoder of ``representation`` settings ``settings`` (freshly initialised)."""
    return ENCODERS.get(settings.kind).build(image, settings, name)


def build_head(settings, spec, input_size, *, name: str, n_classes: int, image_channels: int = 1):
    """The head of (resolved, see :func:`resolve_head`) head settings ``settings``."""
    return HEADS.get(settings.kind).build(spec, input_size, name=name, n_classes=n_classes, settings=settings,
                                          image_channels=image_channels)


def own_head(encoder_kind: Optional[str], task_type: str) -> str:
    """``head.kind: auto``: the encoder architecture's own head for this task type, else the default head of the
    task type (the one registered with ``default=True``)."""
    enc = ENCODERS.get(encoder_kind) if encoder_kind in ENCODERS else None
    own = enc.own_head(task_type) if enc else None
    if own:
        return own
    defaults = [n for n, h in HEADS.items() if h.default and task_type in h.task_types]
    if len(defaults) != 1:
        raise ValueError(f"{len(defaults)} heads are the default for {task_type} tasks ({defaults}); "
                         f"register exactly one with default=True")
    return defaults[0]


def check_head(kind: str, task_type: str, encoder_kind: Optional[str]) -> None:
    """Raise ValueError when head ``kind`` does not serve ``task_type`` or does not attach to the encoder."""
    head = HEADS.get(kind)
    if task_type not in head.task_types:
        raise ValueError(f"{kind!r} is a head for {' / '.join(head.task_types)} tasks, not {task_type}")
    if head.encoders is not None and encoder_kind is not None and encoder_kind not in head.encoders:
        raise ValueError(f"{kind!r} attaches only to the encoders {list(head.encoders)}, not {encoder_kind!r}")


def resolve_head(head, task_type: str, encoder_kind: Optional[str]):
    """The head settings to build: ``head.kind: auto`` replaced by :func:`own_head` (the fields given with it
    validated by that head's settings class), checked against the task type and the encoder (ValueError with the
    message, or pydantic ValidationError located inside the head section)."""
    from umsrep.settings import LEGACY_HEAD

    if head.kind == "auto":
        kind = own_head(encoder_kind, task_type)
        cls = HEADS.get(kind).Settings
        given = {k: v for k, v in (head.model_extra or {}).items()
                 if k in cls.model_fields or k not in LEGACY_HEAD or LEGACY_HEAD[k] != v}
        resolved = cls.model_validate({**given, "kind": kind})
        resolved._auto = True
        head = resolved
    check_head(head.kind, task_type, encoder_kind)
    return head


def register_keras_objects() -> None:
    """Import every module defining a custom Keras layer, which registers it (``umsrep>Name``)."""
    import umsrep.models.blocks.attention  # noqa: F401
    import umsrep.models.blocks.norm  # noqa: F401
    import umsrep.models.layers  # noqa: F401
