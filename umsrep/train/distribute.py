"""``tf.distribute`` strategy from the recipe's ``distribute`` section (one place for every command)."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from umsrep.errors import RecipeError


def _default_devices():
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus] if gpus else [tf.config.list_logical_devices("CPU")[0].name]


def make_strategy(cfg):
    """default | one_device | mirrored | multi_worker (reads ``TF_CONFIG``; every worker runs the same recipe)."""
    kind = cfg.strategy
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "one_device":
        devices = cfg.devices or _default_devices()[:1]
        if len(devices) != 1:
            raise RecipeError("distribute.devices: one_device takes exactly one device")
        return tf.distribute.OneDeviceStrategy(devices[0])
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(cfg.devices or _default_devices())
    if "TF_CONFIG" not in os.environ:
        raise RecipeError("distribute.strategy: multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and this worker's task)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError:
        raise RecipeError("TF_CONFIG: expected JSON with `cluster` and `task`") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (always, except non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)
