"""Masking strategies: exact count, determinism, device, for every registered strategy."""

from __future__ import annotations

import pytest
import torch

from trainables.masking import MASKING, make_mask, num_masked

RATIOS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


@pytest.mark.parametrize("strategy", sorted(MASKING))
@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("grid", [(4, 4), (8, 8), (14, 14)])
def test_exact_ratio(strategy, ratio, grid):
    g = torch.Generator().manual_seed(0)
    mask = make_mask(strategy, 16, grid, ratio, generator=g)
    assert mask.dtype == torch.bool and mask.shape == (16, grid[0] * grid[1])
    assert (mask.sum(dim=1) == num_masked(grid[0] * grid[1], ratio)).all()


@pytest.mark.parametrize("strategy", sorted(MASKING))
def test_seeded_and_varied(strategy):
    def draw(seed):
        return make_mask(strategy, 8, (8, 8), 0.75, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    masks = draw(3)
    assert not all(torch.equal(masks[0], m) for m in masks[1:]), "rows must differ"


def test_random_mask_is_uniform_over_positions():
    g = torch.Generator().manual_seed(0)
    mask = make_mask("random", 4000, (4, 4), 0.25, generator=g)
    freq = mask.float().mean(dim=0)
    assert torch.allclose(freq, torch.full_like(freq, 0.25), atol=0.03)
