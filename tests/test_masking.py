"""Masking strategies: exact count, determinism, device, for every registered strategy."""

from __future__ import annotations

import pytest
import torch

from trainables.masking import ATTENTION_MODES, MASKING, make_mask, num_masked

RATIOS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
#: every strategy, the model-scored one once per mode
DRAWS = [(s, {}) for s in sorted(MASKING) if s != "attention"] + [
    ("attention", {"mode": m}) for m in ATTENTION_MODES
]


def scores_for(batch, length, seed=100):
    """Stand-in model scores (distinct per token) for the strategies that take them."""
    return torch.rand(batch, length, generator=torch.Generator().manual_seed(seed))


def draw(strategy, batch, grid, ratio, seed=0, **options):
    scores = scores_for(batch, grid[0] * grid[1])
    g = torch.Generator().manual_seed(seed)
    return make_mask(strategy, batch, grid, ratio, generator=g, scores=scores, **options)


@pytest.mark.parametrize(("strategy", "options"), DRAWS)
@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("grid", [(4, 4), (8, 8), (14, 14)])
def test_exact_ratio(strategy, options, ratio, grid):
    mask = draw(strategy, 16, grid, ratio, **options)
    assert mask.dtype == torch.bool and mask.shape == (16, grid[0] * grid[1])
    assert (mask.sum(dim=1) == num_masked(grid[0] * grid[1], ratio)).all()


@pytest.mark.parametrize(("strategy", "options"), DRAWS)
def test_seeded_and_varied(strategy, options):
    def masks(seed):
        return draw(strategy, 8, (8, 8), 0.75, seed=seed, **options)

    assert torch.equal(masks(1), masks(1))
    if options.get("mode") in ("high", "low"):  # a function of the scores alone
        assert torch.equal(masks(1), masks(2))
    else:
        assert not torch.equal(masks(1), masks(2))
    rows = masks(3)
    assert not all(torch.equal(rows[0], m) for m in rows[1:]), "rows must differ"


def test_attention_masks_the_most_or_least_attended_tokens():
    scores = scores_for(32, 64)
    k = num_masked(64, 0.6)
    g = torch.Generator().manual_seed(0)
    high = make_mask("attention", 32, (8, 8), 0.6, generator=g, scores=scores)
    low = make_mask("attention", 32, (8, 8), 0.6, generator=g, scores=scores, mode="low")
    ranks = scores.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most attended
    assert torch.equal(high, ranks < k)
    assert torch.equal(low, ranks >= 64 - k)


def test_hide_show_hides_its_share_of_the_most_attended_then_random_tokens():
    scores = scores_for(2000, 16)
    ranks = scores.argsort(dim=1, descending=True).argsort(dim=1)
    k = num_masked(16, 0.5)  # 8
    mask = draw("attention", 2000, (4, 4), 0.5, mode="hide_show", hide=0.25)
    hidden = round(0.25 * k)  # the 2 most attended tokens of every row
    assert mask[ranks < hidden].all()
    # the other 6 of the 14 remaining, uniformly at random: 6/14 of each other rank
    rest = torch.stack([mask[ranks == r].float().mean() for r in range(hidden, 16)])
    assert torch.allclose(rest, torch.full_like(rest, 6 / 14), atol=0.05)
    assert torch.equal(
        draw("attention", 50, (4, 4), 0.5, mode="hide_show", hide=1.0),
        draw("attention", 50, (4, 4), 0.5, mode="high"),
    )


def test_random_mask_is_uniform_over_positions():
    g = torch.Generator().manual_seed(0)
    mask = make_mask("random", 4000, (4, 4), 0.25, generator=g)
    freq = mask.float().mean(dim=0)
    assert torch.allclose(freq, torch.full_like(freq, 0.25), atol=0.03)


def components(mask_row, grid):
    from scipy import ndimage

    labels, count = ndimage.label(mask_row.view(grid).numpy())
    sizes = [int((labels == i).sum()) for i in range(1, count + 1)]
    return count, sizes


def mean_component_size(strategy, ratio=0.5, grid=(14, 14), n=64, **options):
    g = torch.Generator().manual_seed(0)
    masks = make_mask(strategy, n, grid, ratio, generator=g, **options)
    sizes = [s for m in masks for s in components(m, grid)[1]]
    return sum(sizes) / len(sizes)


@pytest.mark.parametrize("colour", ["red", "blue", "green", "purple"])
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_colour_noise_exact_for_every_colour(colour, ratio):
    g = torch.Generator().manual_seed(0)
    mask = make_mask("colour_noise", 8, (14, 14), ratio, generator=g, colour=colour)
    assert (mask.sum(dim=1) == num_masked(196, ratio)).all()


def test_colour_noise_spatial_statistics_distinguish_the_colours():
    red = mean_component_size("colour_noise", colour="red")
    green = mean_component_size("colour_noise", colour="green")
    blue = mean_component_size("colour_noise", colour="blue")
    rnd = mean_component_size("random")
    # low-pass noise gives large blobs, band-pass mid-size, high-pass fine dispersed bits
    assert red > green > blue
    assert red > 2 * rnd
    assert blue < rnd * 1.5


def test_block_masks_are_blockwise_and_inverse_blocks_keep_blocks_visible():
    g = torch.Generator().manual_seed(0)
    grid = (14, 14)
    block = make_mask("block", 32, grid, 0.4, generator=g)
    rnd = make_mask("random", 32, grid, 0.4, generator=g)
    block_parts = sum(components(m, grid)[0] for m in block) / 32
    random_parts = sum(components(m, grid)[0] for m in rnd) / 32
    assert block_parts < random_parts / 3
    inverse = make_mask("inverse_block", 32, grid, 0.6, generator=g)
    visible_parts = sum(components(~m, grid)[0] for m in inverse) / 32
    assert visible_parts < random_parts / 3


def test_block_respects_aspect_ratio_bounds():
    g = torch.Generator().manual_seed(1)
    # one block per sample, square-only: every mask is one filled square-ish rectangle
    mask = make_mask(
        "block",
        16,
        (16, 16),
        0.25,
        generator=g,
        num_blocks=1,
        min_size=0.25,
        max_size=0.25,
        aspect=1.0,
    )
    for m in mask:
        rows = m.view(16, 16).any(dim=1).sum().item()
        cols = m.view(16, 16).any(dim=0).sum().item()
        assert (rows, cols) == (8, 8)


def test_grid_is_a_checkerboard_at_half_and_evenly_spread():
    g = torch.Generator().manual_seed(0)
    mask = make_mask("grid", 8, (8, 8), 0.5, generator=g).view(8, 8, 8)
    assert not (mask[:, :, 1:] & mask[:, :, :-1]).any()  # no two horizontal neighbours
    assert not (mask[:, 1:, :] & mask[:, :-1, :]).any()
    quarter = make_mask("grid", 8, (8, 8), 0.25, generator=g).view(8, 8, 8)
    # every 2x2 cell holds exactly one masked token
    cells = quarter.view(8, 4, 2, 4, 2).sum(dim=(2, 4))
    assert (cells == 1).all()


def test_bad_options_are_refused():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="needs the model's attention scores"):
        make_mask("attention", 2, (4, 4), 0.5, generator=g)
    with pytest.raises(ValueError, match=r"scores must be \[2, 16\]"):
        make_mask("attention", 2, (4, 4), 0.5, generator=g, scores=torch.rand(2, 9))
    with pytest.raises(ValueError, match="mode must be one of high, low, hide_show"):
        make_mask("attention", 2, (4, 4), 0.5, generator=g, scores=torch.rand(2, 16), mode="x")
    with pytest.raises(ValueError, match="colour must be one of"):
        make_mask("colour_noise", 2, (4, 4), 0.5, generator=g, colour="pink")
    with pytest.raises(ValueError, match="aspect"):
        make_mask("block", 2, (4, 4), 0.5, generator=g, aspect=2.0)


def test_a_strategy_may_ask_only_for_scores_a_trainer_supplies():
    from trainables.masking import register_masking

    with pytest.raises(ValueError, match="scores must be one of"):
        register_masking("saliency_first", scores="saliency")
    assert "saliency_first" not in MASKING
    assert MASKING.meta("attention")["scores"] == "attention"
    assert "scores" not in MASKING.meta("random") and "scores" not in MASKING.options("attention")
