"""Run `umsrep fit` in a fresh process with N logical CPU devices (they must exist before TensorFlow starts).

Used by tests/test_distribute.py: ``python tests/distributed_fit.py N_CPUS RECIPE OUT [--set k=v ...]``.
Multi-worker runs get ``TF_CONFIG`` from the environment.
"""

import sys

import tensorflow as tf

n_cpus = int(sys.argv[1])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpus)

from umsrep.cli import main  # noqa: E402

sys.exit(main(["fit", sys.argv[2], "--out", sys.argv[3], *sys.argv[4:]]))
