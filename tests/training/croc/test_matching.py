"""Pool matching: Hungarian is one-to-one and optimal; nearest-neighbour may reuse pool entries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from regionset.training.croc.matching import PoolMatcher, match_rows


def brute_force(cost: np.ndarray) -> float:
    m, p = cost.shape
    return min(cost[np.arange(m), list(cols)].sum() for cols in itertools.permutations(range(p), m))


@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (4, 4), (4, 6), (5, 7)])
def test_hungarian_is_one_to_one_and_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        cost = rng.random(shape)
        cols = match_rows(cost, "hungarian")
        assert len(set(cols.tolist())) == shape[0]
        assert cost[np.arange(shape[0]), cols].sum() == pytest.approx(brute_force(cost))


def test_nearest_reuses_and_hungarian_does_not():
    # every token is closest to pool vector 0
    cost = np.array([[0.1, 0.9, 0.8], [0.2, 0.7, 0.9], [0.05, 0.6, 0.5]])
    assert match_rows(cost, "nearest").tolist() == [0, 0, 0]
    assert sorted(match_rows(cost, "hungarian").tolist()) == [0, 1, 2]


def test_hungarian_needs_enough_pool_vectors():
    with pytest.raises(ValueError, match="pool_size"):
        match_rows(np.zeros((4, 3)), "hungarian")


@pytest.mark.parametrize("mode", ["hungarian", "nearest"])
def test_pool_matcher_threads_match_serial_and_euclidean(mode):
    torch.manual_seed(0)
    tokens = torch.nn.functional.normalize(torch.randn(4, 6, 8), dim=-1)
    pool = torch.nn.functional.normalize(torch.randn(10, 8), dim=-1)
    threaded, serial = PoolMatcher(mode, threads=2), PoolMatcher(mode, threads=1)
    a, b = threaded(tokens, pool), serial(tokens, pool)
    threaded.close()
    assert torch.equal(a, b)
    for i in range(4):
        cost = torch.cdist(tokens[i], pool).numpy()
        assert torch.equal(a[i], torch.from_numpy(match_rows(cost, mode)))
        if mode == "hungarian":
            assert len(set(a[i].tolist())) == 6
