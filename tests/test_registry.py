"""The one registry mechanism: names, options, metadata, did-you-mean."""

from __future__ import annotations

import pytest

from trainables._registry import REQUIRED, Registry, UnknownNameError
from trainables.augment import AUGMENT_OPS
from trainables.masking import MASKING


def test_register_options_metadata_and_lookup():
    reg = Registry("widget", reserved=("x",))

    @reg.register("spin", speed="fast")
    def spin(x, *, turns, tilt=0.5):
        return x * turns

    assert reg["spin"] is spin and reg.lookup("spin") is spin
    assert reg.options("spin") == {"turns": REQUIRED, "tilt": 0.5}
    assert reg.meta("spin") == {"speed": "fast"} and not reg.accepts_any("spin")
    with pytest.raises(ValueError, match="widget 'spin' is already registered"):
        reg.register("spin")(spin)
    with pytest.raises(UnknownNameError) as info:
        reg.lookup("spni")
    assert str(info.value) == "unknown widget 'spni' (did you mean 'spin'?); valid: spin"
    with pytest.raises(UnknownNameError):
        reg.lookup(["not", "hashable"])


def test_limits_and_ordered_options_are_kept_and_must_name_options():
    reg = Registry("widget")

    @reg.register("band", limits={"low": "(0, inf)"}, ordered=[("low", "high")])
    def band(*, low=1.0, high=2.0):
        return low, high

    assert reg.meta("band") == {"limits": {"low": "(0, inf)"}, "ordered": [["low", "high"]]}
    with pytest.raises(ValueError, match=r"limits or order of no option: \['hihg'\]"):
        reg.register("band2", ordered=[("low", "hihg")])(band)
    with pytest.raises(ValueError, match="not an interval"):
        reg.register("band3", limits={"low": "0..1"})


def test_an_entry_with_kwargs_accepts_any_option():
    reg = Registry("thing")

    @reg.register("open")
    def open_(**options):
        return options

    assert reg.accepts_any("open") and reg.options("open") == {}


@pytest.mark.parametrize("registry", [MASKING, AUGMENT_OPS], ids=lambda r: r.kind)
def test_reserved_arguments_are_never_options(registry):
    for name in registry:
        assert not set(registry.options(name)) & set(registry.reserved)
