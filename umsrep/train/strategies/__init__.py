"""Fine-tuning strategies (``strategy.kind``, and the ``strategy.compare`` list), one file per strategy.

A strategy is a class registered in :data:`umsrep.registry.STRATEGIES` that trains the heads (and, if it
updates it, the shared encoder) once :func:`umsrep.train.fit` has built a :class:`~umsrep.train.engine.TaskStream`
per task: :meth:`Strategy.fine_tune` gets a :class:`FineTune` (the streams, the encoder, the heads, the recipe,
where to log and checkpoint) and records its stages in ``ctx.stages``. Its ``Settings`` class (subclassing
:class:`umsrep.settings.StrategySettings`) declares the fields of the ``strategy`` section only it reads (the
alternating ``ratios``, the joint ``weighting``); the section's training settings (epochs, optimizer,
lr_schedule, early_stopping) are shared. Adding a strategy is one file here (and its test)::

    @STRATEGIES.register("round_robin")
    class RoundRobin(Strategy):
        class Settings(StrategySettings):
            rounds: int = Field(2, ge=1, description="round_robin: ...")

        def fine_tune(self, ctx):
            ...   # make a trainer (umsrep.train.engine.Trainer) and ctx.run(trainer)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List

from umsrep.settings import StrategySettings


@dataclass
class FineTune:
    """What a strategy needs: ``name`` (the strategy), the recipe, the shared encoder, ``heads`` (task -> head
    model), ``streams`` (one :class:`~umsrep.train.engine.TaskStream` per task to train, recipe order), ``tasks``
    (task -> :class:`umsrep.data.prepare.TaskData`), the ``tf.distribute`` strategy, logging and checkpoints;
    ``stages`` receives the strategy's stage records (metrics.json ``stages``)."""

    name: str
    recipe: object
    encoder: object
    heads: Dict[str, object]
    streams: List[object]
    tasks: Dict[str, object]
    distribute: object
    stage_log: Callable
    log: Callable
    checkpoints: object = None
    stages: Dict[str, dict] = field(default_factory=dict)

    def run(self, trainer, cfg, stage: str = None) -> "object":
        """Run ``trainer`` under the training settings ``cfg`` as stage ``stage`` (default: the strategy's name)
        with the usual handlers; returns the :class:`~umsrep.train.engine.StageResult`."""
        from umsrep.train.engine import run_stage

        stage = stage or self.name
        return run_stage(trainer, cfg, log=self.log, log_dir=self.stage_log(stage), checkpoints=self.checkpoints)


class Strategy:
    """Base of a fine-tuning strategy."""

    Settings = StrategySettings
    #: the encoder is frozen unless ``representation.trainable`` says otherwise (else: updated)
    freezes_encoder = False
    #: trains correctly under ``precision: mixed_float16`` (needs loss scaling in every update)
    supports_mixed_float16 = True
    #: fine-tunes again the head a supervised representation stage trained with the encoder
    trains_representation_head = True

    def __init__(self, settings):
        self.settings = settings   # the recipe's ``strategy`` section

    def fine_tune(self, ctx: FineTune) -> None:
        raise NotImplementedError

    # -- helpers for strategies that train every head together with the encoder -------------------------
    def shared_model(self, ctx: FineTune):
        """One model image -> {task: output} over the streams' heads (the trainer's model, saved for best
        weights)."""
        from umsrep.models.pyramid import attach

        return attach(ctx.encoder, {s.name: ctx.heads[s.name] for s in ctx.streams}, name=f"umsrep_{ctx.name}")

    def run_together(self, ctx: FineTune, trainer, model) -> dict:
        """Run a trainer of all tasks as one stage under the ``strategy`` section's settings; records it."""
        from umsrep.models.flops import count_parameters

        res = ctx.run(trainer, self.settings)
        ctx.stages[ctx.name] = {**res.to_dict(), "tasks": [s.name for s in ctx.streams],
                                "parameters": {"trainable": res.trainable_params,
                                               "total": count_parameters(model)["total"]}}
        return ctx.stages[ctx.name]
