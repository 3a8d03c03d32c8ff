"""``strategy.kind: independent``: the encoder frozen (unless ``representation.trainable``), each head trained on
its own with its task's settings (epochs, optimizer, schedule), one stage per task."""

from __future__ import annotations

from umsrep.registry import STRATEGIES
from umsrep.train.strategies import Strategy


@STRATEGIES.register("independent")
class Independent(Strategy):
    freezes_encoder = True
    trains_representation_head = False   # a supervised representation's own head is trained already

    def fine_tune(self, ctx):
        from umsrep.models.flops import count_parameters
        from umsrep.train.engine import SingleTask, make_optimizer

        for s in ctx.streams:
            task = ctx.recipe.tasks[s.name]
            variables = s.head_variables + (ctx.encoder.trainable_variables if ctx.encoder.trainable else [])
            trainer = SingleTask(s.name, s, variables, make_optimizer(task.optimizer), ctx.distribute)
            res = ctx.run(trainer, task, stage=s.name)
            ctx.stages[s.name] = {**res.to_dict(), "parameters": {"trainable": res.trainable_params,
                                                                  "total": count_parameters(s.model)["total"]}}
