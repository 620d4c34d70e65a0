"""Shared pieces of the training tests: a small synthetic dataset and a step-by-step checker."""

import numpy as np

from caterpillar.software.training.datasets import Dataset


def synthetic(features, classes, rng, train=48, test=16) -> Dataset:
    """A random classification set (inputs in [0, 1], labels from a random linear model)."""
    w = rng.standard_normal((classes, features))
    x = rng.random((train + test, features)).astype(np.float32)
    y = (x @ w.T).argmax(axis=1)
    return Dataset("synthetic", x[:train], y[:train], x[train:], y[train:], classes,
                   f"random {features}-feature, {classes}-class set")
