"""Generation speed of the embedded synthetic sets (moved here from timed assertions in the tests).

    python bench/synthetic.py [--repeats 3]

The quickstart's ultrasound set (240 images, 64 x 64), 6 ultrasound images at 256 x 256, and a Doppler set of 60
images at 128 x 128; the median of the repeats, in a fresh folder each time. Writes bench/results/synthetic.json.
Targets: the quickstart's set well under 10 s and the others under 5 s and 15 s on 2 cores (they take ~1 s).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import median_time, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from umsrep.data.doppler import make_doppler_dataset
    from umsrep.data.synthetic import make_ultrasound_dataset

    cases = {"ultrasound_240x64": lambda d: make_ultrasound_dataset(d),
             "ultrasound_6x256": lambda d: make_ultrasound_dataset(d, n=6, size=256, seed=0),
             "doppler_60x128": lambda d: make_doppler_dataset(d, n=60, size=128, seed=0)}
    out = {}
    for name, make in cases.items():
        def run():
            with tempfile.TemporaryDirectory() as tmp:
                make(Path(tmp) / "set")

        out[f"{name}_s"] = median_time(run, a.repeats)
        print(f"{name}: {out[f'{name}_s']:.2f} s", flush=True)
    save("synthetic", {"repeats": a.repeats, **out})


if __name__ == "__main__":
    main()
