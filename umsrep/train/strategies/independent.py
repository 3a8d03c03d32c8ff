"""``strategy.kind: independent``: the encoder frozen (unless ``representation.trainable``), each head trained on
its own with its task's settings (epochs, optimizer, schedule), one stage per task."""

from __future__ import annotations

from pydantic import Field

from umsrep.registry import STRATEGIES
from umsrep.settings import StrategySettings
from umsrep.train.strategies import Strategy


@STRATEGIES.register("independent")
class Independent(Strategy):
    """With the encoder frozen, each head trains on the encoder's features computed once
    (:mod:`umsrep.train.feature_cache`): the same batches, without the encoder's forward pass at every step."""

    freezes_encoder = True
    trains_representation_head = False   # a supervised representation's own head is trained already

    class Settings(StrategySettings):
        feature_cache: bool = Field(
            True, description="independent: a head on a frozen encoder trains on the encoder's features computed "
                              "once per image (see cache_views, cache_max_gb); false = through the encoder")
        cache_views: int = Field(0, ge=0, le=64, description="independent, augmented tasks: augmented views of each "
                                 "training image whose features are computed once (epoch e uses view e % N); 0 = "
                                 "augmented heads train through the encoder")
        cache_max_gb: float = Field(2.0, gt=0, description="independent: largest feature cache (float32); beyond "
                                                           "it the head trains through the encoder, with a message")

    def fine_tune(self, ctx):
        from umsrep.models.flops import count_parameters
        from umsrep.train.engine import SingleTask, make_optimizer
        from umsrep.train.feature_cache import cached_stream

        for s in ctx.streams:
            task = ctx.recipe.tasks[s.name]
            variables = s.head_variables + (ctx.encoder.trainable_variables if ctx.encoder.trainable else [])
            stream = s
            if not ctx.encoder.trainable and self.settings.feature_cache:
                stream = cached_stream(s, ctx.encoder, ctx.heads[s.name], ctx.tasks[s.name],
                                       ctx.recipe.task_data(s.name).augment, self.settings, ctx.log) or s
            trainer = SingleTask(s.name, stream, variables, make_optimizer(task.optimizer), ctx.distribute)
            res = ctx.run(trainer, task, stage=s.name)
            ctx.stages[s.name] = {**res.to_dict(), "parameters": {"trainable": res.trainable_params,
                                                                  "total": count_parameters(s.model)["total"]}}
