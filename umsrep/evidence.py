"""Evidence for the numbers in the docs: copy a run's small result files into ``docs/evidence/<name>/``, and check
that every number in a doc's tables equals a value in the evidence the table links to.

Copying (``umsrep evidence RUN_DIR NAME``): the run's ``metrics.json`` and resolved ``recipe.yaml`` (for a parent
run with sub-runs, e.g. k folds: the summary plus each sub-run's ``<sub>/metrics.json`` and ``<sub>/recipe.yaml``,
and ``evaluation.json`` where ``umsrep evaluate`` wrote one),
``command.txt`` and ``meta.json`` (versions, git commit, date, machine). Never models, arrays or images.

Checking (:func:`check_doc`): an HTML comment right before a markdown table links it to its evidence::

    <!-- evidence: docs/evidence/busi/metrics.json, bench/results/peak.json#/n -->
    <!-- evidence-ignore: 256, 3 (image size and seed count are settings) -->
    <!-- evidence-lost: 768, 218 (the run before the change was not kept) -->
    <!-- evidence: none (simulator parameters, not measurements) -->

Every number in the table body must equal a number in the linked JSON files (or the JSON-pointer subtree after
``#``) once that value is rounded to the decimals written. The rules are in docs/evidence/README.md.
Imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from umsrep.errors import RunDirError, UmsrepError

EVIDENCE_DIR = Path("docs") / "evidence"
MAX_BYTES = 2_000_000  # no evidence file is larger: metrics, recipes and commands are small
REFUSED_SUFFIXES = {".keras", ".h5", ".npz", ".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii",
                    ".gz", ".onnx", ".tflite", ".pb", ".zip", ".tar", ".pt", ".pth", ".ckpt"}
RUN_FILES = ("metrics.json", "recipe.yaml")  # RunDir.METRICS, RunDir.RECIPE
OPTIONAL_FILES = ("evaluation.json",)  # written by `umsrep evaluate RUN`
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class EvidenceError(UmsrepError):
    """An evidence folder cannot be made (bad name, existing folder, missing or unsuitable file)."""


# ---------------------------------------------------------------------------------------------------- the machine


def machine() -> dict:
    """CPU model (as /proc/cpuinfo names it), logical cores and memory of this machine."""
    import platform

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 ** 2, 1)
                break
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version()}


def git_state(folder) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``folder``, or None (not a checkout, no git)."""
    try:
        def git(*a):
            return subprocess.run(["git", "-C", str(folder), *a], check=False, capture_output=True, text=True,
                                  timeout=10)

        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------------------------------------- copying


def _small_file(path: Path) -> Path:
    if path.suffix.lower() in REFUSED_SUFFIXES:
        raise EvidenceError(f"{path}: {path.suffix} files are never evidence (models, arrays, images stay out of git)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise EvidenceError(f"{path}: {size:,} bytes, over the {MAX_BYTES:,}-byte limit for evidence files")
    return path


def evidence_files(run_dir) -> dict:
    """``{relative name: source path}`` of what :func:`make_evidence` copies from ``run_dir``: a run's (or a parent
    run's) files, or a ``umsrep tune`` folder's (:func:`tune_files`)."""
    from umsrep.rundir import RunDir
    from umsrep.tune import TUNE_RECIPE

    if (Path(run_dir) / TUNE_RECIPE).is_file() and not (Path(run_dir) / RunDir.RUN).is_file():
        return tune_files(Path(run_dir))
    run = RunDir.open(run_dir)
    files = {}
    for name in RUN_FILES:
        if not (run / name).is_file():
            raise RunDirError(f"{run / name}: missing (was the run completed?)")
        files[name] = run / name
    for name in OPTIONAL_FILES:
        if (run / name).is_file():
            files[name] = run / name
    files.update(_finished_runs(run.path, sorted(p for p in run.path.iterdir() if p.is_dir())))  # fold<i>/, seed<s>/
    for p in files.values():
        _small_file(p)
    return files


def _finished_runs(root: Path, folders) -> dict:
    """``{<folder relative to root>/<file>: path}``: the metrics and recipe of each folder that holds a finished run
    (its metrics.json), and its evaluation.json when `umsrep evaluate` re-scored it."""
    files = {}
    for sub in folders:
        if (sub / RUN_FILES[0]).is_file():
            for name in (*RUN_FILES, *OPTIONAL_FILES):
                if (sub / name).is_file():
                    files[f"{sub.relative_to(root).as_posix()}/{name}"] = sub / name
    return files


def tune_files(out: Path) -> dict:
    """A search folder of ``umsrep tune``: its ``trials.json`` (every trial's values, objective and wall time), the
    search recipe as ``recipe.yaml``, ``best_recipe.yaml``, and each finished trial's ``trials/<id>/metrics.json``
    and ``recipe.yaml`` (and the shared ``representation/`` run's, for ``stage: heads``)."""
    from umsrep.rundir import RunDir
    from umsrep.tune import TRIALS, TUNE_RECIPE

    if not (out / TRIALS).is_file():
        raise RunDirError(f"{out / TRIALS}: missing (has the search finished? continue it with umsrep tune "
                          f"--resume {out})")
    files = {TRIALS: out / TRIALS, RunDir.RECIPE: out / TUNE_RECIPE}
    if (out / "best_recipe.yaml").is_file():
        files["best_recipe.yaml"] = out / "best_recipe.yaml"
    subs = [out / "representation"]  # stage `heads`: the representation trained once for every trial
    if (out / "trials").is_dir():
        subs += sorted(p for p in (out / "trials").iterdir() if p.is_dir())
    files.update(_finished_runs(out, subs))
    for p in files.values():
        _small_file(p)
    return files


def _read_object(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def make_evidence(run_dir, name, *, dest=None, command=None, shared=False, overwrite=False) -> Path:
    """Copy ``run_dir``'s evidence into ``dest/name`` (default ``docs/evidence`` under the current folder).

    The folder is built beside its destination and renamed into place, so an existing one is replaced only when
    ``overwrite`` is set and the new one is complete.
    """
    if not _NAME.fullmatch(name):
        raise EvidenceError(f"{name!r}: an evidence name is letters, digits, '_', '.', '-' (no folders)")
    if dest is None:
        if not Path("docs").is_dir():
            raise EvidenceError("docs/: not found here; run from the repository root or give --dest")
        dest = EVIDENCE_DIR
    out = Path(dest) / name
    if out.exists() and not overwrite:
        raise EvidenceError(f"{out}: exists (give --overwrite to replace it)")
    run_dir = Path(run_dir)
    files = evidence_files(run_dir)
    from umsrep.tune import TRIALS

    search = TRIALS in files
    run_info = _read_object(run_dir / "run.json")
    if search:  # a tune folder has no run.json: versions and date from the best trial's run
        best = _read_object(run_dir / TRIALS).get("best") or {}
        run_info = _read_object(run_dir / "trials" / str(best.get("trial_id")) / "run.json")
    if command is None:
        command = (f"umsrep {'tune' if search else 'fit'} recipe.yaml  # reconstructed: the original command line "
                   f"was not recorded\n")
    import umsrep

    meta = {
        "name": name,
        "source": str(run_dir.resolve()),
        "umsrep_version": run_info.get("umsrep_version"),
        "run_created": run_info.get("created"),
        "run_status": run_info.get("status"),
        "versions": run_info.get("versions"),
        "copied": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "copied_with_umsrep": umsrep.__version__,
        "git_at_copy": git_state(Path(umsrep.__file__).resolve().parent),
        "machine": {**machine(), "shared": True if shared else None},
        "files": {},
    }
    Path(dest).mkdir(parents=True, exist_ok=True)
    tmp = Path(dest) / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, src in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
            meta["files"][rel] = hashlib.sha256((tmp / rel).read_bytes()).hexdigest()
        (tmp / "command.txt").write_text(command.rstrip("\n") + "\n")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        old = None
        if out.exists():
            old = Path(dest) / f".{name}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------------- numbers

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?\b")
_CODE = re.compile(r"`[^`]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?")
_TARGET_SIGNS = "≥≤<>"


@dataclass(frozen=True)
class Number:
    """A number as written in a doc: its text, value, the rounding step its decimals imply, and whether it is a
    percentage (``69 %``)."""

    text: str
    value: float
    step: float
    percent: bool = False

    def matches(self, v: float) -> bool:
        """True when ``v`` (or ``100 v`` for a percentage) rounds to this number at its written decimals."""
        cands = (v * 100, v) if self.percent else (v,)
        tol = self.step / 2 * (1 + 1e-9) + 1e-12
        return any(math.isfinite(c) and abs(c - self.value) <= tol for c in cands)

    def equals(self, v: float) -> bool:
        """Exact equality (a setting: the same number, written any way)."""
        cands = (self.value, self.value / 100) if self.percent else (self.value,)
        return any(math.isclose(c, v, rel_tol=1e-12, abs_tol=1e-15) for c in cands)


def _blank(text: str, pattern) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def numbers_in(text: str, *, skip_targets=True) -> list:
    """The numbers a reader sees as values in ``text`` (see docs/evidence/README.md for the rules).

    Skipped: numbers in `code`, link targets and dates; numbers glued to a word (``fp32``, ``bf16``, ``#8``,
    ``3-head``, ``enc3``); sizes (``256²``); with ``skip_targets``, numbers right after ≥ ≤ < > (targets).
    Kept: thousands separators (``1,217,765``), signs, exponents (``1e-6``), percentages, ratios (``1.12×``).
    """
    text = _blank(_blank(_blank(text, _CODE), _LINK_TARGET), _DATE)
    out = []
    for m in _NUMBER.finditer(text):
        s, e = m.span()
        before, after = text[s - 1] if s else " ", text[e] if e < len(text) else " "
        if before.isalnum() or before in "_#.":
            continue
        if after.isalnum() or after in "_²³" or (after == "-" and text[e + 1:e + 2].isalpha()):
            continue
        if skip_targets:
            left = text[:s].rstrip()
            if left.endswith(("-", "−")):  # a sign belongs to the number; look before it
                left = left[:-1].rstrip()
            if left and left[-1] in _TARGET_SIGNS and not left.endswith("->"):
                continue
        whole, dec, exp = m.group(1), m.group(2) or "", m.group(3)
        value = float(whole.replace(",", "") + (f".{dec}" if dec else "")) * (10.0 ** int(exp) if exp else 1.0)
        step = 10.0 ** ((int(exp) if exp else 0) - len(dec))
        sign_at = s - 1
        if sign_at >= 0 and text[sign_at] in "-−" and (sign_at == 0 or text[sign_at - 1] in " ([,=:"):
            value = -value
        percent = text[e:].lstrip().startswith("%")
        out.append(Number(text[s:e], value, step, percent))
    return out


PER_ITEM_KEYS = ("history", "groups", "per_image")  # per-epoch curves, per-patient features, per-image values
LONG_LIST = 32                          # longer lists are per-item values (per image, per pair), not results


def json_numbers(obj) -> tuple:
    """(measured values, setting values): numeric leaves of a JSON value, and the numbers written inside its strings
    (commands, ``--set`` options), which count as settings. Per-item data below the linked value — per-epoch
    training curves (``history``), per-patient features (``groups``), per-image values (``per_image``), any list
    longer than LONG_LIST — is left out:
    thousands of such values would match almost any 3-decimal number by chance; a table that quotes them links its
    ``#/pointer`` to them."""
    values, settings = [], []

    def walk(o):
        if isinstance(o, bool) or o is None:
            return
        if isinstance(o, (int, float)):
            values.append(float(o))
        elif isinstance(o, str):
            settings.extend(n.value for n in numbers_in(o, skip_targets=False))
        elif isinstance(o, dict):
            for k, v in o.items():
                if k not in PER_ITEM_KEYS:
                    walk(v)
        elif isinstance(o, list) and (o is obj or len(o) <= LONG_LIST):
            for v in o:
                walk(v)

    walk(obj)
    return values, settings


def json_pointer(obj, pointer: str):
    """RFC 6901: ``/models/denoising_autoencoder`` (``~1`` for '/', ``~0`` for '~'); KeyError/IndexError if absent."""
    if pointer in ("", "/"):
        return obj
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


# ---------------------------------------------------------------------------------------------------- tables

_COMMENT = re.compile(r"^\s*<!--\s*(evidence(?:-ignore|-lost)?)\s*:\s*(.*?)\s*-->\s*$")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass
class Table:
    """A markdown table: the line of its header (1-based), its body rows ``(line, text)`` and its evidence
    comments ``{"evidence": [...], "evidence-ignore": [...], "evidence-lost": [...]}`` with their lines."""

    line: int
    rows: list
    comments: dict = field(default_factory=dict)
    comment_lines: dict = field(default_factory=dict)


def tables_in(text: str) -> list:
    lines = text.splitlines()
    tables, i, fence = [], 0, False
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            fence = not fence
        if not fence and lines[i].lstrip().startswith("|") and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1]):
            t = Table(line=i + 1, rows=[])
            j = i - 1
            while j >= 0 and (not lines[j].strip() or _COMMENT.match(lines[j])):
                m = _COMMENT.match(lines[j])
                if m:
                    t.comments.setdefault(m.group(1), []).insert(0, m.group(2))
                    t.comment_lines.setdefault(m.group(1), j + 1)
                j -= 1
            k = i + 2
            while k < len(lines) and lines[k].lstrip().startswith("|"):
                t.rows.append((k + 1, lines[k]))
                k += 1
            tables.append(t)
            i = k
            continue
        i += 1
    return tables


@dataclass
class DocReport:
    """What :func:`check_doc` found: ``problems`` (strings ``doc:line: ...``), ``unlinked`` (lines of tables with
    numbers and no evidence comment), ``lost`` (``doc:line: numbers (reason)``) and ``checked`` (numbers matched)."""

    problems: list = field(default_factory=list)
    unlinked: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    checked: int = 0


def _split_list(contents: list) -> tuple:
    """``["256, 3 (why)", "5 (more)"]`` -> ([Number 256, Number 3, Number 5], "why; more")."""
    numbers, reasons = [], []
    for content in contents:
        m = re.search(r"\((.*)\)\s*$", content)
        if m:
            content = content[:m.start()]
            reasons.append(m.group(1).strip())
        numbers += numbers_in(content, skip_targets=False)
    return numbers, "; ".join(r for r in reasons if r)


class _Evidence:
    """The values and settings of one table's linked files."""

    def __init__(self, links, root: Path, where: str, problems: list):
        self.values, self.settings, self.names = [], [], []
        for link in links:
            for item in (x.strip() for x in re.split(r",\s+", link) if x.strip()):
                path, _, pointer = item.partition("#")
                self.names.append(item)
                self._load(root, path, pointer, where, problems)

    def _load(self, root, path, pointer, where, problems):
        p = root / path
        if not p.is_file():
            problems.append(f"{where}: linked evidence {path} does not exist")
            return
        structured = p.suffix == ".json" or (p.suffix in (".yaml", ".yml") and pointer)
        if structured:
            try:
                obj = _read_structured(p)
            except ValueError as e:
                problems.append(f"{where}: {path}: {e}")
                return
            try:
                obj = json_pointer(obj, pointer)
            except (KeyError, IndexError, ValueError, TypeError):
                problems.append(f"{where}: {path}#{pointer}: no such key path in the file")
                return
            values, settings = json_numbers(obj)
            self.values += values
            self.settings += settings
            for sib in ("recipe.yaml", "command.txt"):  # the run's settings beside its metrics
                if p.suffix == ".json" and (p.parent / sib).is_file() and p.parent != root:
                    self.settings += [n.value for n in numbers_in((p.parent / sib).read_text(), skip_targets=False)]
        elif p.suffix in (".yaml", ".yml", ".txt"):
            self.settings += [n.value for n in numbers_in(p.read_text(), skip_targets=False)]
        else:
            problems.append(f"{where}: {path}: evidence must be .json (values), .yaml/.yml with #/pointer (values) "
                            f"or .yaml/.yml/.txt (settings)")


def _read_structured(path: Path):
    """A JSON file, or a YAML file (a shipped encoder's card.yaml) read with the safe loader; ValueError if invalid."""
    text = path.read_text()
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"invalid JSON ({e.msg} at line {e.lineno})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"invalid YAML ({str(e).splitlines()[0]})") from None


def check_table(t: Table, doc: str, root: Path, report: DocReport) -> None:
    body = [(line, n) for line, row in t.rows for n in numbers_in(row.strip().strip("|"))]
    links = t.comments.get("evidence", [])
    where = f"{doc}:{t.comment_lines.get('evidence', t.line)}"
    if any(re.match(r"none\b", x) for x in links):
        if not all(re.match(r"none\s*[(:—-]\s*\S", x) for x in links):
            report.problems.append(f"{where}: 'evidence: none' needs a reason, e.g. <!-- evidence: none (settings) -->")
        return
    if not body:
        return
    if not links:
        report.unlinked.append(f"{doc}:{t.line}")
        return
    ignore, _ = _split_list(t.comments.get("evidence-ignore", []))
    lost, lost_reason = _split_list(t.comments.get("evidence-lost", []))
    if lost and not lost_reason:
        report.problems.append(f"{doc}:{t.comment_lines['evidence-lost']}: evidence-lost needs a reason in "
                               f"parentheses after the numbers")
    ev = _Evidence(links, root, where, report.problems)
    used = set()
    for line, n in body:
        hit = next((x for x in ignore + lost if x.value == n.value), None)
        if hit is not None:
            used.add(id(hit))
            continue
        if any(n.equals(s) for s in ev.settings):
            continue
        if any(n.matches(v) for v in ev.values):
            report.checked += 1
            continue
        decimals = max(0, -round(math.log10(n.step)))
        what = "value x (or 100 x)" if n.percent else "value"
        report.problems.append(f"{doc}:{line}: {n.text}{' %' if n.percent else ''}: no {what} in "
                               f"{', '.join(ev.names)} rounds to it ({decimals} decimals)")
    for kind, items in (("evidence-ignore", ignore), ("evidence-lost", lost)):
        for x in items:
            if id(x) not in used:
                report.problems.append(f"{doc}:{t.comment_lines[kind]}: {kind} {x.text} matches no number in the "
                                       f"table below it (remove it)")
    if lost:
        report.lost.append(f"{doc}:{t.line}: {', '.join(x.text for x in lost)} ({lost_reason})")


def check_doc(path, root) -> DocReport:
    """Check every table of the markdown file ``path`` (links are relative to the repository ``root``)."""
    root, path = Path(root), Path(path)
    doc = str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else str(path)
    report = DocReport()
    for t in tables_in((root / doc).read_text()):
        check_table(t, doc, root, report)
    return report
