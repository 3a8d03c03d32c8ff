"""Atomic writes: write to a temporary file in the same folder, then rename over the target.

A crash can leave a stray temporary file, never a half-written model, metrics or report file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_text(path, text: str) -> Path:
    return _atomic(Path(path), lambda p: p.write_text(text, encoding="utf-8"))


def write_bytes(path, data: bytes) -> Path:
    return _atomic(Path(path), lambda p: p.write_bytes(data))


def _default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_json(path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True) + "\n")


def save_keras(model, path) -> Path:
    """Save a Keras model in the ``.keras`` format atomically (Keras insists on the suffix)."""
    return _atomic(Path(path), lambda p: model.save(str(p)), suffix=".keras")


# -- reading: YAML with limits, Keras model files -----------------------------------------------------------------
MAX_YAML_NODES = 100_000  # a recipe or card has a few hundred; an alias bomb expands to billions


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses duplicate keys (with their lines) and bounds alias expansion: every
        node's expanded size (itself plus everything below it, aliases counted at full size) is summed while the
        document is composed, so a 'billion laughs' document is refused before anything is constructed."""

        def __init__(self, stream):
            super().__init__(stream)
            self._sizes = {}

        def compose_node(self, parent, index):
            node = super().compose_node(parent, index)
            if id(node) in self._sizes:  # an alias: the anchored node, already counted once
                return node
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._sizes.get(id(v), 1) for v in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
            else:
                size = 1
            if size > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"the document expands to more than {MAX_YAML_NODES:,} values through aliases "
                    f"(*name); refused", node.start_mark)
            self._sizes[id(node)] = size
            return node

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # unhashable key: the base class reports it
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first at line {first})", key_node.start_mark)
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return Loader


def load_yaml(text: str):
    """Parse YAML like ``yaml.safe_load``, refusing duplicate keys and alias bombs (``yaml.YAMLError``)."""
    loader = _yaml_loader()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_error_text(e) -> str:
    """``invalid YAML at line L, column C: problem`` for a ``yaml.YAMLError``."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or "invalid YAML"
    return f"invalid YAML{where}: {problem}"


def read_text(path, what: str = "file") -> str:
    """A UTF-8 text file, or one line (:class:`~umsrep.errors.DataError`) saying why it cannot be read."""
    from umsrep.errors import DataError, os_reason

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path_text(path)}: cannot read {what} ({os_reason(e)})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path_text(path)}: {what} is not UTF-8 text (byte 0x{data[e.start]:02x} at line {line})") \
            from None


def path_text(p) -> str:
    """A path as printable text: undecodable bytes of a POSIX file name appear as ``\\xNN``."""
    from umsrep.errors import _path_text

    return _path_text(p)


def load_keras(path, what: str = "model"):
    """``keras.models.load_model`` in safe mode, with one line naming the file for anything that goes wrong: missing,
    not a ``.keras`` archive (truncated, damaged), refused by safe mode (the file carries code), other load errors."""
    import zipfile

    import keras

    import umsrep.models.layers  # noqa: F401  (registers umsrep's custom layers)
    from umsrep.errors import RunDirError, one_line

    path = Path(path)
    shown = path_text(path)
    if not path.is_file():
        raise RunDirError(f"{shown}: {what} file missing" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
        raise RunDirError(f"{shown}: damaged {what} file (not a complete .keras archive; truncated?)")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RunDirError(f"{shown}: damaged {what} file ({one_line(e)})") from None
    if bad is not None:
        raise RunDirError(f"{shown}: damaged {what} file (member {bad} fails its CRC check)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as e:  # Keras raises ValueError, TypeError, KeyError, OSError, ... for bad files
        text = one_line(e)
        if "safe_mode" in text or "safe mode" in text.lower():
            raise RunDirError(f"{shown}: {what} file contains code; refused (Keras safe mode will not run code "
                              f"from a model file)") from None
        raise RunDirError(f"{shown}: cannot load {what} ({type(e).__name__}: {text[:300]})") from None
