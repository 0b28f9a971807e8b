"""River model factory: one small adapter so every model answers ``predict_one(user, item)``.

River's recommenders (``reco.BiasedMF``, ``reco.FunkMF``, ``reco.Baseline``) take the user
and the item as arguments; its factorisation machines (``facto.FMRegressor``) take a feature
dict. :class:`Recommender` hides the difference so learners, subscribers and evaluation call
one shape. The published model is this object (pickled and signed by the model store).

>>> rec = make_model("BiasedMF", seed=1)
>>> rec.learn_one("u1", "i1", 4.0)
>>> round(rec.predict_one("u1", "i1"), 3) > 0
True
>>> make_model("Nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
learning.errors.ConfigurationError: unknown model "Nope"; expected one of Baseline, ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from river import facto, optim, reco

from learning.erasure import predict_unchanged
from learning.errors import ConfigurationError

__all__ = ["MODEL_NAMES", "Recommender", "clip", "make_model"]

Context = Mapping[str, float | str] | None


def _biased_mf(seed: int, **params: Any) -> reco.BiasedMF:
    defaults: dict[str, Any] = {
        "n_factors": 10,
        "bias_optimizer": optim.SGD(0.025),
        "latent_optimizer": optim.SGD(0.05),
        "latent_initializer": optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
        "l2_bias": 0.0,
        "l2_latent": 0.0,
    }
    return reco.BiasedMF(**{**defaults, **params}, seed=seed)


def _funk_mf(seed: int, **params: Any) -> reco.FunkMF:
    defaults: dict[str, Any] = {
        "n_factors": 10,
        "optimizer": optim.SGD(0.05),
        "initializer": optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
    }
    return reco.FunkMF(**{**defaults, **params}, seed=seed)


def _baseline(seed: int, **params: Any) -> reco.Baseline:
    return reco.Baseline(**{"optimizer": optim.SGD(0.025), **params})


def _fm(seed: int, **params: Any) -> facto.FMRegressor:
    defaults: dict[str, Any] = {
        "n_factors": 10,
        "intercept": 3.0,
        "weight_optimizer": optim.SGD(0.025),
        "latent_optimizer": optim.SGD(0.05),
        "latent_initializer": optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
    }
    return facto.FMRegressor(**{**defaults, **params}, seed=seed)


_FACTORIES: dict[str, Callable[..., Any]] = {
    "BiasedMF": _biased_mf,
    "Baseline": _baseline,
    "FMRegressor": _fm,
    "FunkMF": _funk_mf,
}
MODEL_NAMES: tuple[str, ...] = tuple(sorted(_FACTORIES))


class Recommender:
    """A River model behind one interface: ``learn_one`` and ``predict_one`` on (user, item).

    ``name`` and ``params`` are the whole configuration (the object can be rebuilt from
    them); the River model is the learned state.
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, seed: int = 42):
        if name not in _FACTORIES:
            raise ConfigurationError(
                f'unknown model "{name}"; expected one of {", ".join(MODEL_NAMES)}'
            )
        self.name = name
        self.params = dict(params or {})
        self.seed = seed
        try:
            self._model = _FACTORIES[name](seed, **self.params)
        except TypeError as exc:
            raise ConfigurationError(f'bad parameters for model "{name}": {exc}') from exc
        self._features = name == "FMRegressor"

    def _x(self, user: str, item: str, context: Context) -> dict[str, Any]:
        x: dict[str, Any] = {"user": user, "item": item}
        if context:
            x.update((k, v) for k, v in context.items() if isinstance(v, int | float))
        return x

    def predict_one(self, user: str, item: str, context: Context = None) -> float:
        """Predict the value (rating) ``user`` would give ``item``."""
        # through learning.erasure: an unknown id never adds an entry (River's would)
        if self._features:
            return predict_unchanged(self._model, user, item, self._x(user, item, context))
        return predict_unchanged(self._model, user, item)

    def learn_one(self, user: str, item: str, value: float, context: Context = None) -> None:
        """Update the model with one observed value."""
        if self._features:
            self._model.learn_one(self._x(user, item, context), value)
        else:
            self._model.learn_one(user, item, value)

    def forget_user(self, user: str) -> int:
        """Remove ``user``'s learned state (:mod:`learning.erasure`); return entries removed."""
        from learning.erasure import forget_river_user

        return forget_river_user(self._model, user)

    def __repr__(self) -> str:
        return f"Recommender({self.name!r}, {self.params!r}, seed={self.seed})"


def clip(y: float, bounds: tuple[float, float] | None) -> float:
    """``y`` limited to ``bounds`` (``None``: unchanged).

    >>> clip(7.2, (1.0, 5.0)), clip(7.2, None)
    (5.0, 7.2)
    """
    return y if bounds is None else min(max(y, bounds[0]), bounds[1])


def make_model(name: str = "BiasedMF", seed: int = 42, **params: Any) -> Recommender:
    """Build a :class:`Recommender` by name with River defaults tuned for ratings."""
    return Recommender(name, params, seed=seed)
