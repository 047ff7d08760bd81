"""Baselines without a sequence model: logistic regression on pooled frame features.

A temporal model earns its place only if it beats these on the same folds:

* ``pooled_lr``: the mean and standard deviation over time of the frame
  features and of their frame-to-frame differences (``4 * D`` numbers per
  clip), the strongest baseline without a sequence model;
* ``middle_lr``: the feature of the clip's middle frame alone (a single image).

Both standardise with training-set statistics, then fit a multinomial logistic
regression whose inverse regularisation ``C`` is chosen by an inner
cross-validation over the training clips (grouped by recording where groups
are known), so no test clip influences it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from activity.errors import ActivityError
from activity.registry import BASELINES

#: C values tried by the inner cross-validation.
DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def middle_frame(x: np.ndarray) -> np.ndarray:
    """The middle step's feature: ``(N, T, D)`` -> ``(N, D)``."""
    return x[:, x.shape[1] // 2]


def pooled_statistics(x: np.ndarray) -> np.ndarray:
    """Mean and std over time of the features and of their differences: ``(N, T, D)`` -> ``(N, 4 * D)``.

    A clip of one step has zero differences. The arithmetic is :func:`activity.temporal.models.pooled_statistics`'s
    (with every step valid), so a trained ``pooled_lr`` checkpoint pools exactly as the regression it was fitted as.
    """
    from activity.temporal.models import pooled_statistics as pooled

    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    return pooled(t, torch.ones(t.shape[:2], dtype=torch.bool)).numpy()


BASELINES.add("pooled_lr", pooled_statistics)
BASELINES.add("middle_lr", middle_frame)


@dataclass
class LogisticBaseline:
    """Standardisation and logistic regression on a fixed pooling of the frame features.

    Args:
        name: a name in :data:`~activity.registry.BASELINES`.
        cs: ``C`` values tried by the inner cross-validation.
        inner_folds: folds of that inner cross-validation.
        seed: seed of the inner folds.
    """

    name: str
    cs: tuple[float, ...] = DEFAULT_CS
    inner_folds: int = 3
    seed: int = 0
    c_: float | None = field(default=None, init=False)
    classes_: np.ndarray | None = field(default=None, init=False)
    _model: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        BASELINES.get(self.name)  # an unknown name fails here, naming the choices

    def _pipeline(self, c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    def fit(self, x: np.ndarray | torch.Tensor, y: np.ndarray, groups: np.ndarray | None = None) -> "LogisticBaseline":
        """Choose ``C`` by inner cross-validation on ``(x, y)``, then fit on all of it.

        Args:
            x: frame features ``(N, T, D)``.
            y: class indices ``(N,)``.
            groups: recording groups ``(N,)`` or None; inner folds never split a group.
        """
        from activity.data.splits import kfold_splits

        z = BASELINES.get(self.name)(_numpy(x))
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        try:
            splits = kfold_splits(y, groups, self.inner_folds, seed=self.seed) if len(self.cs) > 1 else []
        except ActivityError:
            splits = []  # too few clips or groups for inner folds: keep the middle C
        if splits:
            scores = [np.mean([self._score(c, z, y, tr, te) for tr, te in splits]) for c in self.cs]
            self.c_ = self.cs[int(np.argmax(scores))]  # ties go to the stronger regularisation (smaller C first)
        else:
            self.c_ = self.cs[len(self.cs) // 2]
        self._model = self._fit(self.c_, z, y)
        return self

    def predict_proba(self, x: np.ndarray | torch.Tensor, num_classes: int) -> np.ndarray:
        """Class probabilities ``(N, num_classes)``; classes absent from training get zero."""
        if self._model is None or self.classes_ is None:
            raise ActivityError("baseline used before fit")
        p = self._model.predict_proba(BASELINES.get(self.name)(_numpy(x)))
        out = np.zeros((len(p), num_classes))
        out[:, self.classes_] = p
        return out

    def linear_form(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fitted model as ``softmax(weight @ ((z - mean) / scale) + bias)`` over the classes seen in training.

        Returns:
            ``(mean (P,), scale (P,), weight (K, P), bias (K,), seen classes (K,))`` for the pooled
            features ``z`` (``P`` numbers); a binary regression's single row becomes two (the first
            class's logit 0), and a model of one class a zero row.
        """
        if self._model is None or self.classes_ is None:
            raise ActivityError("baseline used before fit")
        if isinstance(self._model, _Constant):
            return np.zeros(self._model.width), np.ones(self._model.width), np.zeros((1, self._model.width)), np.zeros(1), self.classes_
        scaler, lr = self._model.steps[0][1], self._model.steps[-1][1]
        weight, bias = lr.coef_, lr.intercept_
        if weight.shape[0] == 1:  # binary: the second class's logit against 0
            weight, bias = np.concatenate([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
        return scaler.mean_, scaler.scale_, weight, bias, self.classes_

    def _fit(self, c: float, z: np.ndarray, y: np.ndarray):
        if len(np.unique(y)) < 2:
            return _Constant(z.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at large C
            return self._pipeline(c).fit(z, y)

    def _score(self, c: float, z: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> float:
        model = self._fit(c, z[tr], y[tr])
        classes = np.unique(y[tr])
        pred = classes[model.predict_proba(z[te]).argmax(1)]
        return float((pred == y[te]).mean())


@dataclass
class _Constant:
    """The only class seen in training, with certainty (``width``: pooled numbers per clip)."""

    width: int

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        return np.ones((len(z), 1))


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.float().numpy()
    return np.asarray(x, dtype=np.float64)
