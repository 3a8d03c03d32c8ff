"""``fixed``: ``sum_i w_i L_i`` with the recipe's weights (default 1 each)."""

from __future__ import annotations

from typing import Literal

from umsrep.registry import WEIGHTINGS
from umsrep.settings import WeightingSettings
from umsrep.train.weighting import Weighting


@WEIGHTINGS.register("fixed")
class Fixed(Weighting):
    class Settings(WeightingSettings):
        method: Literal["fixed"] = "fixed"

    def monitor_weights(self):
        return self.state()  # the recipe's fixed weights say what matters
