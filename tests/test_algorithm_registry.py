"""`@register` makes a class selectable as algorithm=NAME, and refuses what would silently break the registry."""

from __future__ import annotations

import pytest

from cgatrain.algorithms import get_algorithm
from cgatrain.algorithms.base import ALGORITHMS, register
from cgatrain.algorithms.dpsgd import DPSGD


def test_a_subclass_that_keeps_its_parents_name_is_refused() -> None:
    class Damped(DPSGD):  # forgot `name`: it would replace the built-in dpsgd everywhere
        pass

    with pytest.raises(ValueError, match=r"algorithm 'dpsgd' is already registered by cgatrain.algorithms.dpsgd.DPSGD; cannot register .*Damped"):
        register(Damped)
    assert get_algorithm("dpsgd") is DPSGD
    assert register(DPSGD) is DPSGD  # the same class again (a re-imported module) is fine


def test_a_new_name_registers_and_bad_class_attributes_are_named() -> None:
    class Damped(DPSGD):
        name = "damped_dpsgd"

    try:
        assert register(Damped) is Damped and get_algorithm("damped_dpsgd") is Damped
    finally:
        ALGORITHMS.remove("damped_dpsgd")
    assert "damped_dpsgd" not in ALGORITHMS

    class Misspelt(DPSGD):
        name = "misspelt"
        mixing = "double"

    with pytest.raises(TypeError, match=r"algorithm 'misspelt': class attribute `mixing` must be one of .*'doubly'.*got 'double'"):
        register(Misspelt)
    nameless = type("Nameless", (DPSGD,), {"name": ""})
    with pytest.raises(TypeError, match="class Nameless needs a class attribute `name`"):
        register(nameless)
