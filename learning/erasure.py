"""Erasure in the pure core: remove one user's learned state so they become a cold user.

:class:`Forgettable` is the one verb: ``forget_user(user) -> int``, the number of entries
(rows, weights, samples) removed; ``0`` means the user was not known. River's
recommenders keep per-user dicts (``u_biases``, ``u_latents``) and user-side optimizers
(``u_bias_optimizer``, ``u_latent_optimizer``: stateful ones such as AdaGrad keep a
per-user entry too); its factorisation machine keeps the ``user_<id>`` feature's weight and
latent vector (and optimizer state under that key). :func:`forget_river_user` removes
exactly those; item-side state is left alone, so it still carries what the user taught it
(see docs/privacy.md).

>>> from learning.models import make_model
>>> rec = make_model("BiasedMF", seed=1)
>>> rec.learn_one("u1", "i1", 5.0)
>>> forget_river_user(rec._model, "u1"), forget_river_user(rec._model, "u1")
(2, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from learning.finetune import FineTuner
    from learning.forgetting import ForgettingTracker
    from learning.replay import ReplayBuffer
    from learning.rounds import RoundBatch
    from learning.serving import LifelongModel
    from learning.slices import Samples
    from learning.torch_models import DeepRecommender

__all__ = ["PURE_PREDICT", "Forgettable", "forget_attached", "forget_deep_user",
           "forget_finetuner_row",
           "forget_finetuner_user",
           "forget_lifelong_model", "forget_ranker_user", "forget_river_user", "forget_samples",
           "predict_unchanged", "scrub_key"]

_MAX_DEPTH = 3


@runtime_checkable
class Forgettable(Protocol):
    """Anything that can drop one user's learned state."""

    def forget_user(self, user: str) -> int:
        """Remove ``user``; return how many entries went (``0``: unknown user)."""
        ...


def scrub_key(obj: Any, key: str, depth: int = _MAX_DEPTH) -> int:
    """Delete ``key`` from every mutable mapping reachable from ``obj`` (bounded depth).

    Only use with a key that cannot name anything else (a ``user_<id>`` feature, or a
    user id inside user-only state): item tables keyed by a colliding id would lose it too.

    River objects (optimizers) are walked through; other objects are not entered.

    >>> g2 = {"user_a": 1.0, "item_a": 2.0}
    >>> scrub_key({"state": {"g2": g2}, "user_a": 3}, "user_a"), g2
    (2, {'item_a': 2.0})
    """
    removed = 0
    if isinstance(obj, MutableMapping):
        if key in obj:
            del obj[key]
            removed += 1
        values = list(obj.values()) if depth > 0 else []
    elif depth > 0 and hasattr(obj, "__dict__") and not isinstance(obj, type):
        values = list(vars(obj).values())
    else:
        values = []
    for value in values:
        if isinstance(value, MutableMapping) or (
                hasattr(value, "__dict__") and type(value).__module__.startswith("river")):
            removed += scrub_key(value, key, depth - 1)
    return removed


def forget_river_user(model: Any, user: str) -> int:
    """Remove ``user`` from a River recommender or factorisation machine; return entries."""
    if hasattr(model, "weights") and hasattr(model, "latents"):  # facto.*: one-hot features
        return scrub_key(model, f"user_{user}")
    removed = 0
    for name, value in vars(model).items():
        if name.startswith("u_"):  # u_biases, u_latents, u_bias_optimizer, u_latent_optimizer
            removed += scrub_key(value, user, depth=2)
    return removed


def predict_unchanged(model: Any, user: str, item: str, x: dict[str, Any] | None = None) -> float:
    """River's prediction without adding an entry for an unknown id (the model is unchanged).

    River's recommenders keep ``defaultdict`` tables: ``predict_one`` for an unknown user
    inserts a bias and a freshly drawn latent vector (advancing the initializer's random
    state), so a serving copy grows with every unknown id asked and an erased user would
    reappear as an empty row. Here known ids predict exactly as River does (the same
    operations in the same order); an unknown id contributes nothing (bias 0, no
    interaction), as a cold user of :class:`~learning.blend.DeepView`. For a factorisation
    machine (``x`` given) unknown one-hot features are left out.

    >>> from learning.models import make_model
    >>> rec = make_model("BiasedMF", seed=1)
    >>> rec.learn_one("u1", "i1", 5.0)
    >>> river = rec._model
    >>> predict_unchanged(river, "u1", "i1") == river.predict_one("u1", "i1")
    True
    >>> _ = predict_unchanged(river, "stranger", "i1"); "stranger" in river.u_latents
    False
    """
    if x is not None:  # facto.*: one-hot string features, then only the known ones
        feats = model._ohe_cat_features(x)
        known = {j: v for j, v in feats.items() if j in model.weights and j in model.latents}
        return float(model._raw_dot(known).item() if known else model.intercept)
    fast = PURE_PREDICT.get(type(model))
    if fast is not None:
        return fast(model, user, item)
    return _pure_generic(model, user, item)


def _pure_biased_mf(m: Any, user: str, item: str) -> float:
    # river.reco.BiasedMF.predict_one, reading the tables without inserting
    ub, ib, ul, il = m.u_biases, m.i_biases, m.u_latents, m.i_latents
    if user in ul and item in il and user in ub and item in ib:  # both known: the hot path,
        # River's sum in River's order, in one expression
        return float(m.global_mean.get() + ub[user] + ib[item] + np.dot(ul[user], il[item]))
    y = m.global_mean.get()
    if user in ub:
        y += ub[user]
    if item in ib:
        y += ib[item]
    if user in ul and item in il:
        y += np.dot(ul[user], il[item])
    return float(y)


def _pure_funk_mf(m: Any, user: str, item: str) -> float:
    ul, il = m.u_latents, m.i_latents
    if user in ul and item in il:
        return float(np.dot(ul[user], il[item]).item())
    return 0.0


def _pure_baseline(m: Any, user: str, item: str) -> float:
    return float(m.global_mean.get() + m.u_biases.get(user, 0.0) + m.i_biases.get(item, 0.0))


def _pure_generic(model: Any, user: str, item: str) -> float:
    tables = [getattr(model, n) for n in ("u_biases", "i_biases", "u_latents", "i_latents")
              if hasattr(model, n)]
    if all(user in t for t in tables[::2]) and all(item in t for t in tables[1::2]):
        return float(model.predict_one(user, item))
    y = model.global_mean.get() if hasattr(model, "global_mean") else 0.0
    if hasattr(model, "u_biases"):
        y += model.u_biases.get(user, 0.0) + model.i_biases.get(item, 0.0)
    if hasattr(model, "u_latents") and user in model.u_latents and item in model.i_latents:
        y += float(np.dot(model.u_latents[user], model.i_latents[item]))
    return float(y)


def _pure_table() -> dict[type, Any]:
    from river import reco

    return {reco.BiasedMF: _pure_biased_mf, reco.FunkMF: _pure_funk_mf,
            reco.Baseline: _pure_baseline}


# River's recommender classes whose :func:`predict_unchanged` is one of the functions above
# (``fn(model, user, item)``): the learners call it without the dispatch
PURE_PREDICT: dict[type, Any] = _pure_table()


def forget_attached(obj: Any, user: str, *, skip: tuple[Any, ...] = ()) -> int:
    """Erase ``user`` from the :class:`Forgettable` attributes of ``obj`` (bar ``skip``).

    Monitors attach their state to the learner (the input-drift window), so it rides in
    checkpoints: it is erased with the learner.
    """
    return sum(value.forget_user(user) for value in list(vars(obj).values())
               if isinstance(value, Forgettable) and not any(value is s for s in skip))


# rankers -------------------------------------------------------------------------------
def forget_ranker_user(ranker: Any, user: str) -> int:
    """Remove ``user`` from a ranker (popularity, co-occurrence, sequence, BPR, blend).

    Popularity keeps no per-user state (0); co-occurrence and sequence drop the user's
    recent items; BPR zeroes the user's factor row and unlinks it (the row stays allocated
    under an anonymous key, so row numbering does not move); a blend forgets in each part
    and drops the user's last time and seen items (the reranker also its shown-and-skipped
    memory). Item-side state (counts, links, item
    factors) keeps what the user taught it, as for River (docs/privacy.md).

    >>> from learning.ranking_learner import make_ranker
    >>> bpr = make_ranker("bpr"); bpr.learn_one("a", 0); bpr.learn_one("b", 1)
    >>> forget_ranker_user(bpr, "a"), forget_ranker_user(bpr, "a"), "a" in bpr._users
    (1, 0, False)
    >>> bool((bpr.score_items("a") == bpr.score_items("nobody")).all())
    True
    """
    from learning.rank_blend import SessionBlend
    from learning.rank_rerank import ListwiseRerank

    removed = 0
    if isinstance(ranker, SessionBlend | ListwiseRerank):
        for part in ranker.parts().values():
            removed += forget_ranker_user(part, user)
        for name in ("_last_ts", "_seen", "_length", "_level", "_skipped"):  # per-user state
            table = getattr(ranker, name, None)
            if isinstance(table, dict):
                removed += table.pop(user, None) is not None
        ranker._cache = None
        return removed
    if type(ranker).__name__ == "DeepMix":  # learning.rank_deep_online (torch-bound)
        removed += forget_ranker_user(ranker.base, user) + forget_ranker_user(ranker.deep, user)
        removed += ranker._seen.pop(user, None) is not None
        ranker._cache = None
        return removed
    if type(ranker).__name__ == "DeepRankPart":
        return removed + _forget_deep_part(ranker, user)
    if type(ranker).__name__ == "FollowedDeep":  # learning.rank_deep_follow
        return removed + ranker.forget_user(user)
    recent = getattr(ranker, "_recent", None)
    if isinstance(recent, dict) and recent.pop(user, None) is not None:  # CoOccurrence
        removed += 1
    users = getattr(ranker, "_users", None)
    if isinstance(users, dict) and user in users:  # BPR: rows are allocated by len(_users)
        row = users.pop(user)
        users[f"\x00erased:{row}"] = row
        ranker._user_factors[row] = 0.0
        removed += 1
    return removed


# the deep model and the fine-tuner ------------------------------------------------------
def _forget_deep_part(part: Any, user: str) -> int:
    """A ranking model's deep part: its tuner, replay and pending events, the fold-in."""
    removed = int(part._fold.pop(user, None) is not None)
    part._users.pop(user, None)  # a cache of the frozen model's user vector
    users, items, weights, times = part._pending
    keep = [k for k, u in enumerate(users) if u != user]
    removed += len(users) - len(keep)
    part._pending = ([users[k] for k in keep], [items[k] for k in keep],
                     [weights[k] for k in keep], [times[k] for k in keep])
    part._pending_negatives = sum(weights[k] < 0 for k in keep)  # hard negatives pending
    return removed + forget_finetuner_user(part.tuner, user, buffer=part.buffer)


def forget_deep_user(recommender: DeepRecommender, user: str) -> int:
    """Free ``user``'s id-table row and zero its embedding row; 1 if known, else 0.

    The user then predicts as a never-seen one (biases and global mean only). The freed
    row is redrawn when a new id reuses it, as after a TTL eviction.

    >>> from learning.torch_models import DeepRecommender
    >>> rec = DeepRecommender(n_factors=2); _ = rec.users.lookup(["a"], now=0.0)
    >>> forget_deep_user(rec, "a"), forget_deep_user(rec, "a"), "a" in rec.users
    (1, 0, False)
    """
    return int(_forget_deep_row(recommender, user) >= 0)


def _forget_deep_row(recommender: DeepRecommender, user: str) -> int:
    """:func:`forget_deep_user`, returning the freed row (-1: unknown user)."""
    import torch

    row = recommender.users.forget(user)
    if row >= 0:
        with torch.no_grad():
            recommender.module.user_table[row] = 0.0
        seen = getattr(recommender, "_seen", None)  # a DeepRanker's seen lists, by row
        if isinstance(seen, dict):
            seen.pop(row, None)
    return row


def forget_samples(samples: Samples, users: Iterable[str]) -> int:
    """Drop every sample of ``users`` from ``samples`` in place; return how many went."""
    drop = set(users)
    keep = [j for j, u in enumerate(samples.users) if u not in drop]
    gone = len(samples) - len(keep)
    if gone:
        for name in ("users", "items", "values", "ts"):
            column = getattr(samples, name)
            column[:] = [column[j] for j in keep]
    return gone


def forget_finetuner_user(tuner: FineTuner | None, user: str, *,
                          buffer: ReplayBuffer | None = None,
                          tracker: ForgettingTracker | None = None,
                          batches: Iterable[RoundBatch] = ()) -> int:
    """Erase ``user`` from the slow learner (id table, rows, replay, slices, batches).

    The id-table row, the embedding row and the optimizers' state of that row, the replay
    buffer's samples, the tracker's retained old slices and pending round batches.
    The count below: the id-table row, and the sample in the reservoir and recent ring.

    >>> from learning import FineTuner, ReplayBuffer, DeepRecommender
    >>> tuner = FineTuner(DeepRecommender(n_factors=2), device="cpu")
    >>> buf = ReplayBuffer(100, recent_window=10)
    >>> _ = tuner.round(["a", "b"], ["x", "y"], [4.0, 2.0], [0.0, 1.0], buf)
    >>> forget_finetuner_user(tuner, "a", buffer=buf), "a" in tuner.recommender.users
    (3, False)
    """
    removed = 0
    if tuner is not None:
        row = tuner.recommender.users.forget(user)
        if row >= 0:
            removed += 1 + forget_finetuner_row(tuner, row, buffer)
            if tuner.group is not None:  # under torchrun (rank 0): the other ranks too
                tuner.group.send_forget([row])
    if tracker is not None:
        for _, samples, _ in tracker._slices:
            removed += forget_samples(samples, [user])
    for batch in batches:
        removed += forget_samples(batch.fresh_samples, [user])
        removed += forget_samples(batch.held, [user])
    return removed


def forget_finetuner_row(tuner: FineTuner, row: int, buffer: ReplayBuffer | None) -> int:
    """Zero user ``row`` (embedding, seen list, optimizer state), drop its replay samples.

    Returns the samples dropped from ``buffer``. Under torchrun every rank runs it for the
    rows rank 0 freed (each rank holds its own replay shard).
    """
    import torch

    rec = tuner.recommender
    with torch.no_grad():
        rec.module.user_table[row] = 0.0
    seen = getattr(rec, "_seen", None)  # a DeepRanker's seen lists, by row
    if isinstance(seen, dict):
        seen.pop(row, None)
    _zero_optimizer_rows(tuner, row)
    return buffer.forget_rows([row]) if buffer is not None else 0


def _zero_optimizer_rows(tuner: FineTuner, row: int) -> None:
    """Zero the optimizers' per-row state (Adam moments...) of user row ``row``."""
    import torch

    param = tuner.recommender.module.user_table
    with torch.no_grad():
        for states in tuner._states():  # the optimizers' or the compiled rounds' state
            for t in states.get(param, {}).values():
                if isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] > row:
                    t[row] = 0


# the lifelong (rating blend) serving model ----------------------------------------------
def forget_lifelong_model(model: LifelongModel, user: str) -> int:
    """Remove ``user`` from a :class:`~learning.serving.LifelongModel`; return entries.

    River (:meth:`Recommender.forget_user`), the exact biases (the user's row is unlinked
    and zeroed: the bias history's row numbers carry no id), the served deep view's user
    row, the fold-in vector and the user's recent residual and sums (residual spread, items'
    biases). The per-segment blend weights, the rows they are refit from and the item's sum
    of its raters' biases hold no id (item-side state keeps what the user taught it).
    """
    removed = model.online.forget_user(user)
    removed += model.forget_rows(user)  # the recent residual and sums: one entry
    biases = model.biases
    row = biases._users.pop(user, None)
    if row is not None:
        biases._nu[row] = biases._su[row] = 0.0
        removed += 1
    serving = model._serving
    if serving is not None:
        view, vectors = serving[0], serving[1]
        vrow = view.users.pop(user, None)
        if vrow is not None:
            view.user_vecs[vrow] = 0.0
            view.user_bias[vrow] = 0.0
            removed += 1
        removed += vectors._vecs.pop(user, None) is not None
    return removed + forget_attached(model, user, skip=(model.online,))
