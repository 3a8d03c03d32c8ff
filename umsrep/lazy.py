"""Modules imported on first use, so declarations (recipe settings, registrations) stay importable without
TensorFlow: ``from umsrep.lazy import tf`` binds a stand-in that imports ``tensorflow`` the first time one of its
attributes is read. Only for code whose module body does not need the library (plug-ins whose methods use it)."""

from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self):
        return f"<lazy module {self._name!r}{' (imported)' if self._module is not None else ''}>"


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
