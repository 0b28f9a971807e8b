"""Serve the fine-tuner's deep model inside the online learner: follow its versions.

:func:`follow_deep` subscribes to a deep model's alias (``production`` by default) with the
store's default loader (the codec table decodes ``safetensors`` into a
:class:`~learning.torch_models.DeepRecommender`) and swaps every new version into a
:class:`~learning.lifelong.LifelongLearner` as a frozen view (``set_deep``, thread-safe).

>>> from learning.lifelong import LifelongLearner
>>> from learning.torch_models import DeepRecommender
>>> from model_store import Registry
>>> from consumers.deep_publisher import DeepPublisher
>>> reg = Registry.from_url("memory://", signer=None)
>>> pub = DeepPublisher(reg, "reco-deep")
>>> pub.promote(pub.publish(DeepRecommender(n_factors=2)).number, reason="first")
>>> learner = LifelongLearner()
>>> sub = follow_deep(reg, "reco-deep", learner)
>>> sub.wait_for_version(1, timeout=5), learner.deep_version
(True, 1)
>>> sub.stop()
"""

from __future__ import annotations

import logging

from learning.blend import DeepView
from learning.lifelong import LifelongLearner
from learning.rank_deep import DeepRanker
from learning.ranking_learner import RankingLearner
from learning.torch_models import DeepRecommender
from model_store.records import ModelVersion
from model_store.registry import Registry
from model_store.subscriber import Subscriber

__all__ = ["follow_deep"]

log = logging.getLogger(__name__)


def follow_deep(registry: Registry, model: str, learner: LifelongLearner | RankingLearner,
                alias: str = "production") -> Subscriber:
    """Serve ``model``'s ``alias`` inside ``learner``, swapping each new version in.

    A :class:`~learning.lifelong.LifelongLearner` (the rating task) takes a deep rating
    model as a frozen :class:`~learning.blend.DeepView`; a ranking learner built with
    ``follow_deep=True`` takes a ``deep-ranking`` model (``lifelong finetune --task
    ranking``) into its :class:`~learning.rank_deep_follow.FollowedDeep` part. A version
    of the other kind is logged and skipped (the learner keeps what it had).
    """
    ranking = isinstance(learner, RankingLearner)

    def on_swap(_alias: str, version: ModelVersion) -> None:
        loaded = subscriber.loaded(alias)
        if loaded is None:
            return
        found = loaded.model
        if ranking and isinstance(found, DeepRanker):
            learner.set_deep(found, version.number)
        elif not ranking and isinstance(found, DeepRecommender) \
                and not isinstance(found, DeepRanker):
            learner.set_deep(DeepView.of(found), version.number)
        else:
            log.warning("%s is a %s, not a deep %s model: not blended", version.ref,
                        type(found).__name__, "ranking" if ranking else "rating")
            return
        log.info("blending with %s version %d", model, version.number)

    subscriber = Subscriber(registry, model, alias=alias, on_swap=on_swap)
    return subscriber.start()
