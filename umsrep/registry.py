"""A tiny name -> object registry, the one mechanism behind encoders, heads, losses, noise models, strategies,
loss weightings and learning-rate schedules.

Plug-ins register themselves when their module is imported; :meth:`Registry.discover` imports every module (or
sub-package) of a package, so adding a plug-in is adding a file (or a folder) — nothing else to edit. Registries
whose entries carry a pydantic ``Settings`` class also validate the recipe section that names them
(:func:`settings_validator`): the names a recipe may use are always the registered ones.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Dict, Generic, Optional, TypeVar

from umsrep.errors import RecipeError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, key: str = "kind", package: Optional[str] = None, packages_only: bool = False):
        self.kind = kind
        self.key = key                # the recipe field that names an entry (kind, method, ...)
        self.package = package        # plug-ins live in this package: imported (discovered) on first look-up
        self.packages_only = packages_only
        self._items: Dict[str, T] = {}
        self._loaded = package is None

    def _load(self):
        if not self._loaded:
            self._loaded = True
            discover(self.package, packages_only=self.packages_only)

    def register(self, name: str, obj: Optional[T] = None):
        """``@REG.register(name)`` on a class/function, or ``REG.register(name, obj)``."""

        def deco(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = o
            return o

        return deco if obj is None else deco(obj)

    def unregister(self, name: str):
        """Remove an entry (tests registering a temporary plug-in)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise RecipeError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(sorted(self._items))}"
            ) from None

    def names(self):
        self._load()
        return sorted(self._items)

    def items(self):
        self._load()
        return list(self._items.items())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items


def discover(package: str, packages_only: bool = False) -> None:
    """Import every module and sub-package of ``package`` (sub-packages only with ``packages_only``; names
    starting with ``_`` are skipped), so the plug-ins they define register themselves."""
    pkg = importlib.import_module(package)
    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_") and (m.ispkg or not packages_only):
            importlib.import_module(f"{package}.{m.name}")


def settings_validator(registry: Registry, default: Optional[str] = None, legacy: Optional[dict] = None
                       ) -> Callable[[Any], Any]:
    """A pydantic before-validator for a recipe section keyed on ``registry.key``: it validates the section with
    the ``Settings`` class of the named entry (``entry.Settings``), so each plug-in declares its own fields and
    an unknown name or a field of another plug-in is refused, naming the field.

    ``legacy``: fields recipes written by older versions repeated for every entry, with the value they had when
    unused; such a field that the named entry does not have is dropped when it still has that value."""
    from pydantic import BaseModel, ValidationError

    def validate(v):
        if isinstance(v, BaseModel):
            return v
        if v is None and default is not None:
            v = {}
        if not isinstance(v, dict):
            return v  # the field's own type check reports it
        name = v.get(registry.key, default)
        if not isinstance(name, str) or name not in registry:
            raise ValidationError.from_exception_data(registry.kind, [{
                "type": "literal_error", "loc": (registry.key,), "input": name,
                "ctx": {"expected": ", ".join(repr(n) for n in registry.names())}}])
        cls = registry.get(name).Settings
        if legacy:
            v = {k: x for k, x in v.items() if k in cls.model_fields or k not in legacy or legacy[k] != x}
        return cls.model_validate({**v, registry.key: name})

    return validate


# ------------------------------------------------------------------------------------------- the plug-in registries
# Each is filled by the files of its package (discovered on first look-up); see docs/architecture.md.
ENCODERS = Registry("encoder", "kind", "umsrep.models", packages_only=True)      # models/<architecture>/__init__.py
HEADS = Registry("head", "kind", "umsrep.models", packages_only=True)            # models/<architecture>/, heads/
STRATEGIES = Registry("strategy", "kind", "umsrep.train.strategies")             # train/strategies/<name>.py
WEIGHTINGS = Registry("weighting method", "method", "umsrep.train.weighting")    # train/weighting/<name>.py
SCHEDULES = Registry("learning-rate schedule", "kind", "umsrep.train.schedules")  # train/schedules/<name>.py
