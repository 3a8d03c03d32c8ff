"""From a recipe to arrays: load each data set once, split it once, and derive every task's targets.

Tasks that use the top-level ``data`` share its split with the representation stage, so no test image is
ever seen by the encoder. A task with its own ``data`` override gets its own data set and split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

from umsrep.data.dataset import LoadedData, Skipped, load_dataset
from umsrep.data.splits import check_classes_present, read_split_file, split_indices
from umsrep.errors import DataError
from umsrep.recipe import DataConfig, Recipe

SPLITS = ("train", "val", "test")


@dataclass
class Source:
    """One loaded data set with its split (indices into ``data``)."""

    key: str
    config: DataConfig
    data: LoadedData
    split: Dict[str, np.ndarray]

    also: List["Source"] = field(default_factory=list)  # representation.extra_data: trained on too

    def names(self, which):
        return [self.data.names[i] for i in self.split[which]]

    def pooled_counts(self) -> Dict[str, dict]:
        """Pooled data (``data.pool``): per data set its root and image counts per split; empty otherwise."""
        if not self.data.origins:
            return {}
        origins = np.asarray(self.data.origins)
        parts = self.config.parts()
        roots = dict(zip(origin_names(parts), (c.root or "synthetic" for c in parts)))
        return {o: {"root": roots[o], "images": int((origins == o).sum()),
                    **{s: int((origins[self.split[s]] == o).sum()) for s in SPLITS}} for o in roots}

    def representation_images(self, which) -> np.ndarray:
        """The images of split ``which`` the representation trains on: this source's, then each ``also`` one's."""
        return np.concatenate([s.data.images[s.split[which]] for s in [self, *self.also]])


@dataclass
class TaskData:
    name: str
    type: str
    classes: List[str]
    source: Source
    index: Dict[str, np.ndarray]          # split -> rows of source.data usable by this task
    targets: np.ndarray                   # per row of source.data: class id (cls) or label map (seg)
    skipped: List[Skipped] = field(default_factory=list)
    excluded: Dict[str, int] = field(default_factory=dict)   # label -> images left out by the task's label_map

    def arrays(self, which):
        idx = self.index[which]
        return self.source.data.images[idx], self.targets[idx]

    def counts(self):
        return {s: int(len(self.index[s])) for s in SPLITS}


def _key(cfg: DataConfig) -> str:
    d = cfg.model_dump(mode="json", exclude={"augment"})  # augmentation does not change the data loaded
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def load_source(cfg: DataConfig, seed: int, workdir: Path, log=print) -> Source:
    """One data set (``cfg``), read and split; with ``cfg.pool`` the pooled data sets, each read and split on its
    own, joined split by split (:func:`pool_data`)."""
    if cfg.pool:
        parts = [load_source(c, seed, workdir, log) for c in cfg.parts()]
        src = Source(_key(cfg), cfg, *pool_data([p.data for p in parts], [p.split for p in parts],
                                                [p.config for p in parts]))
        log(f"pooled data: {len(src.data)} images from {len(parts)} data sets (" + ", ".join(
            f"{o} {v['images']}" for o, v in src.pooled_counts().items()) + "); train "
            f"{len(src.split['train'])}, val {len(src.split['val'])}, test {len(src.split['test'])}")
        return src
    root = cfg.root
    if cfg.synthetic is not None:
        s = cfg.synthetic
        if s.kind == "doppler":
            from umsrep.data.doppler import make_doppler_dataset

            root = str(make_doppler_dataset(Path(workdir) / "doppler_data", n=s.n, size=s.size, seed=s.seed,
                                            low_quality=s.low_quality))
        else:
            from umsrep.data.synthetic import make_ultrasound_dataset

            root = str(make_ultrasound_dataset(Path(workdir) / "data", n=s.n, size=s.size, seed=s.seed,
                                               per_patient=s.per_patient))
        log(f"synthetic {s.kind} data set: {s.n} images at {s.size}x{s.size} in {root}")
    if not Path(root).is_dir():
        raise DataError(f"{root}: data folder not found (data.root; set UMSREP_DATA for the shared data)")
    data = load_dataset(root, cfg.images, cfg.masks, cfg.labels, image_size=tuple(cfg.image_size),
                        channels=cfg.channels, filename_column=cfg.filename_column, label_column=cfg.label_column,
                        group_by=cfg.group_by, on_bad_file=cfg.on_bad_file, resize=cfg.resize)
    has_labels = any(lab is not None for lab in data.labels)
    if cfg.split.file is not None:
        split = read_split_file(cfg.split.file, data.files, data.names, data.groups if cfg.group_by else None)
    else:
        split = split_indices(len(data), labels=data.labels if has_labels else None,
                              groups=data.groups if cfg.group_by else None, test=cfg.split.test, val=cfg.split.val,
                              seed=seed if cfg.split.seed is None else cfg.split.seed, folds=cfg.split.folds,
                              fold=cfg.split.fold or 0, train_fraction=cfg.split.train_fraction)
    unit = f", split by {cfg.group_by}" if cfg.group_by else ""
    how = f"from {cfg.split.file}" if cfg.split.file else f"seed {seed if cfg.split.seed is None else cfg.split.seed}"
    log(f"data {root}: {len(data)} images (train {len(split['train'])}, val {len(split['val'])}, "
        f"test {len(split['test'])}; split {how}{unit}), {len(data.skipped)} skipped")
    return Source(_key(cfg), cfg, data, split)


def origin_names(configs: List[DataConfig]) -> List[str]:
    """A short name per pooled data set: its folder's name (``synthetic`` for generated data), made unique by a
    number when two folders share a name."""
    base = [Path(c.root).name if c.root else "synthetic" for c in configs]
    out: List[str] = []
    for b in base:
        name, k = b, 1
        while name in out or (name != b and name in base):   # 'data', 'data' next to 'data1': data, data2, data1
            k += 1
            name = f"{b}{k}"
        out.append(name)
    return out


def pool_data(parts: List[LoadedData], splits: List[Dict[str, np.ndarray]], configs: List[DataConfig]):
    """Join data sets read on their own into one ``(LoadedData, split)``: rows in order of ``parts``, each part's
    split kept (so a pooled set's test images are those of its own recipe), every image tagged with its data set
    (``origins``); group values (``group_by``) are prefixed with it so two sets' patient ids never merge.
    DataError when two data sets have an image of the same name (names identify images in every output)."""
    origins = origin_names(configs)
    seen: Dict[str, str] = {}
    for d in parts:
        for name, f in zip(d.names, d.files):
            if name in seen:
                raise DataError(f"{f}: pooled data sets (data.pool) both have an image named {name!r} (the other: "
                                f"{seen[name]}); rename one")
            seen[name] = f
    h, w = parts[0].images.shape[1:3]
    has_masks = any(d.masks is not None for d in parts)
    offsets = np.cumsum([0] + [len(d) for d in parts])
    data = LoadedData(
        names=[n for d in parts for n in d.names],
        files=[f for d in parts for f in d.files],
        images=np.concatenate([d.images for d in parts]),
        masks=np.concatenate([d.masks if d.masks is not None else np.full((len(d), h, w), -1, np.int32)
                              for d in parts]) if has_masks else None,
        has_mask=np.concatenate([d.has_mask for d in parts]),
        labels=[lab for d in parts for lab in d.labels],
        groups=_pooled_groups(parts, configs, origins),
        skipped=[x for d in parts for x in d.skipped],
        sizes=None if any(d.sizes is None for d in parts) else np.concatenate([d.sizes for d in parts]),
        mask_files=[m for d in parts for m in (d.mask_files or [None] * len(d))],
        origins=[o for d, o in zip(parts, origins) for _ in range(len(d))],
    )
    split = {s: np.concatenate([sp[s] + off for sp, off in zip(splits, offsets)]).astype(np.int64) for s in SPLITS}
    return data, split


def _pooled_groups(parts, configs, origins) -> list:
    """Group values of pooled data: ``<data set>/<group>``; where some sets are grouped and others not, each image
    of an ungrouped set is its own group (its images are independent)."""
    if not any(c.group_by for c in configs):
        return [None] * sum(len(d) for d in parts)
    return [f"{o}/{g if c.group_by else n}" if (g is not None or not c.group_by) else None
            for d, c, o in zip(parts, configs, origins) for g, n in zip(d.groups, d.names)]


def segmentation_targets(masks: np.ndarray, classes, mask_classes) -> np.ndarray:
    """Raw label maps -> class-id maps (0 = background, i = classes[i-1]). One class without
    ``mask_classes``: any non-zero pixel is foreground."""
    if mask_classes is None:
        return (masks > 0).astype(np.int32)
    out = np.zeros(masks.shape, np.int32)
    for i, c in enumerate(classes, start=1):
        out[np.isin(masks, mask_classes[c])] = i
    return out


def task_data(name, task, source: Source, held_out_only=False) -> TaskData:
    """A task's targets on ``source``; ``held_out_only``: a data set only scored (``umsrep evaluate --data``), so
    no training split is required."""
    data, cfg = source.data, source.config
    n = len(data)
    skipped: List[Skipped] = []
    excluded: Dict[str, int] = {}
    if task.type == "segmentation":
        if data.masks is None:
            raise DataError(f"{cfg.root}: task {name!r} is a segmentation task but data.masks gives no masks")
        usable = data.has_mask.copy()
        targets = segmentation_targets(np.where(data.masks < 0, 0, data.masks), task.classes, task.mask_classes)
    else:
        ids = {c: i for i, c in enumerate(task.classes)}
        usable = np.zeros(n, bool)
        targets = np.full(n, -1, np.int32)
        for i, lab in enumerate(data.labels):
            if lab is None:
                continue
            if task.label_map is not None:
                if lab not in task.label_map:
                    excluded[lab] = excluded.get(lab, 0) + 1
                    continue
                lab = task.label_map[lab]
            if lab not in ids:
                msg = f"label {lab!r} is not one of the classes of task {name!r} {task.classes}"
                if cfg.on_bad_file == "error":
                    raise DataError(f"{data.files[i]}: {msg}")
                skipped.append(Skipped(data.files[i], msg))
                continue
            usable[i] = True
            targets[i] = ids[lab]
    index = {s: source.split[s][usable[source.split[s]]] for s in SPLITS}
    if held_out_only:
        return TaskData(name, task.type, list(task.classes), source, index, targets, skipped, excluded)
    for s in ("train", "test"):
        if len(index[s]) == 0:
            raise DataError(f"{cfg.root}: task {name!r} has no labelled sample in the {s} split")
    if task.type == "classification":
        train_labels = [task.classes[t] for t in targets[index["train"]]]
    else:  # a segmentation class must have pixels in some training mask
        present = np.unique(targets[index["train"]])
        train_labels = [task.classes[v - 1] for v in present if v > 0]
    check_classes_present(train_labels, task.classes, f"the training split of task {name!r}")
    return TaskData(name, task.type, list(task.classes), source, index, targets, skipped, excluded)


def prepare(recipe: Recipe, workdir: Path, log=print):
    """Load every data set the recipe needs (once each) -> (representation source, {task: TaskData})."""
    sources: Dict[str, Source] = {}

    def get(cfg):
        k = _key(cfg)
        if k not in sources:
            sources[k] = load_source(cfg, recipe.seed, workdir, log)
        return sources[k]

    rep_source = get(recipe.data)
    rep_source.also = [get(cfg) for cfg in recipe.extra_representation_data()]
    tasks = {name: task_data(name, t, get(recipe.task_data(name))) for name, t in recipe.tasks.items()}
    return rep_source, tasks, sources
