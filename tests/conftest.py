"""Shared fixtures: seeded random generators (seed printed on failure) and simulator skips."""

import os
import zlib

import numpy as np
import pytest

#: Seed override for reproducing a failure: CATERPILLAR_SEED=<n> pytest ...
SEED_ENV = "CATERPILLAR_SEED"


@pytest.fixture
def seed(request) -> int:
    """A fixed per-test seed (from the test id), or ``$CATERPILLAR_SEED``; reported on failure."""
    value = int(os.environ.get(SEED_ENV, zlib.crc32(request.node.nodeid.encode())))
    request.node._caterpillar_seed = value
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A NumPy generator seeded by :func:`seed`."""
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    seed_value = getattr(item, "_caterpillar_seed", None)
    if report.failed and seed_value is not None:
        report.sections.append(("random seed", f"reproduce with {SEED_ENV}={seed_value}"))
