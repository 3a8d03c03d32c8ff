"""``strategy.kind: alternating``: ``ratios[t]`` consecutive batches of task ``t``, then the next task, each batch
updating the encoder and the active head with that task's own optimizer; an epoch is every task's steps per
epoch in this order (Luong et al. 2015)."""

from __future__ import annotations

from typing import Dict, List, Literal, Union

from pydantic import Field, field_validator

from umsrep.registry import STRATEGIES
from umsrep.settings import StrategySettings
from umsrep.train.engine import Trainer, _unique
from umsrep.train.strategies import Strategy


def alternating_schedule(streams, ratios) -> List[tuple]:
    """[(task, consecutive batches), ...] for one turn. ``ratios``: ``"auto"`` (proportional to each task's
    steps per epoch, i.e. its training examples, smallest = 1) or ``{task: batches}`` (missing tasks: 1)."""
    if ratios == "auto":
        smallest = min(s.steps_per_epoch for s in streams)
        return [(s.name, max(1, round(s.steps_per_epoch / smallest))) for s in streams]
    return [(s.name, int(ratios.get(s.name, 1))) for s in streams]


class Alternating(Trainer):
    """``ratios[t]`` batches of task t, then the next task, ...; each batch updates encoder + active head
    with the active task's optimizer. An epoch is ``sum(steps_per_epoch)`` batches in this order."""

    def __init__(self, name, streams, shared_variables, optimizers: Dict[str, object],
                 model, ratios="auto", strategy=None):
        super().__init__(name, streams, model, strategy)
        self.shared = _unique(shared_variables)
        self._opts = optimizers
        self.schedule = alternating_schedule(streams, ratios)
        self._vars = {s.name: _unique(self.shared + s.head_variables) for s in streams}
        with self.strategy.scope():
            for s in streams:
                self._opts[s.name].build(self._vars[s.name])
        self._steps = {s.name: self._make_step(s) for s in streams}
        self._turn = 0          # position in the schedule
        self._left = self.schedule[0][1]
        self.trace: List[str] = []   # task of every batch of the current epoch

    @property
    def variables(self):
        return _unique([v for s in self.streams for v in self._vars[s.name]])

    @property
    def optimizers(self):
        return self._opts

    def optimizer_tasks(self, opt_name):
        return [opt_name]

    def _make_step(self, s):
        return self._one_task_step(s, self._vars[s.name], self._opts[s.name])

    def get_state(self):
        return {**super().get_state(), "turn": self._turn, "left": self._left}

    def set_state(self, state):
        super().set_state(state)
        self._turn, self._left = int(state["turn"]), int(state["left"])

    def step(self):
        """Run the next scheduled batch; returns ``(task, loss)``."""
        task = self.schedule[self._turn][0]
        loss = float(self._steps[task](self.next_batch(task)))
        self._left -= 1
        if self._left == 0:
            self._turn = (self._turn + 1) % len(self.schedule)
            self._left = self.schedule[self._turn][1]
        self.trace.append(task)
        return task, loss

    def train_epoch(self):
        self.trace = []
        sums = {s.name: [0.0, 0] for s in self.streams}
        for _ in range(self.steps_per_epoch()):
            task, loss = self.step()
            sums[task][0] += loss
            sums[task][1] += 1
        logs = {f"loss/{t}": a / n for t, (a, n) in sums.items() if n}
        logs["loss"] = float(sum(logs.values()))
        logs.update({f"batches/{t}": n for t, (_, n) in sums.items()})
        return logs


@STRATEGIES.register("alternating")
class AlternatingStrategy(Strategy):
    class Settings(StrategySettings):
        ratios: Union[Literal["auto"], Dict[str, int]] = Field(
            "auto", description="alternating: consecutive batches per task (auto: proportional to training "
                                "examples, Luong et al. 2015)")

        @field_validator("ratios")
        @classmethod
        def _ratios(cls, v):
            if isinstance(v, dict) and any(n < 1 for n in v.values()):
                raise ValueError("ratios must be integers >= 1 (batches per turn)")
            return v

    def fine_tune(self, ctx):
        from umsrep.train.engine import make_optimizer

        model = self.shared_model(ctx)
        trainer = Alternating(ctx.name, ctx.streams, ctx.encoder.trainable_variables,
                              {s.name: make_optimizer(ctx.recipe.tasks[s.name].optimizer) for s in ctx.streams},
                              model, ratios=self.settings.ratios, strategy=ctx.distribute)
        ctx.log(f"alternating schedule (task, batches per turn): {trainer.schedule}")
        self.run_together(ctx, trainer, model)["schedule"] = [list(x) for x in trainer.schedule]
