"""The shared momentum piece: each form against its formula, and the two buffer conventions."""

from __future__ import annotations

import pytest
import torch

from cgatrain.algorithms import Momentum


def _run(momentum: Momentum, lrs: list[float], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(5, generator=generator, dtype=torch.float64)
    for lr in lrs:
        momentum.apply(x, torch.sin(3 * x) + x, lr)  # a fixed nonlinear "gradient" field
    return x


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("buffer", ["velocity", "gradient"])
def test_each_form_follows_its_formula(nesterov: bool, buffer: str) -> None:
    beta, lrs = 0.8, [0.1, 0.1, 0.05, 0.05, 0.02]
    got = _run(Momentum(beta, nesterov, buffer), lrs)
    x = torch.randn(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = torch.zeros_like(x)
    for lr in lrs:
        g = torch.sin(3 * x) + x
        if buffer == "velocity":  # v = beta v - lr g ; x += v  or  x += beta v - lr g
            v = beta * v - lr * g
            x = x + (beta * v - lr * g if nesterov else v)
        else:  # m = beta m + g ; x -= lr m  or  x -= lr (g + beta m)
            v = beta * v + g
            x = x - lr * (g + beta * v if nesterov else v)
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_conventions_agree_at_constant_lr_and_differ_when_it_changes(nesterov: bool) -> None:
    constant = [0.1] * 6
    torch.testing.assert_close(_run(Momentum(0.9, nesterov, "velocity"), constant), _run(Momentum(0.9, nesterov, "gradient"), constant))
    decayed = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    assert not torch.allclose(_run(Momentum(0.9, nesterov, "velocity"), decayed), _run(Momentum(0.9, nesterov, "gradient"), decayed))


def test_zero_momentum_is_plain_sgd_and_state_round_trips() -> None:
    x, g = torch.ones(3, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(Momentum(0.0).apply(x.clone(), g, 0.1), x - 0.1 * g, rtol=0, atol=0)
    momentum = Momentum(0.9, nesterov=True)
    momentum.apply(x.clone(), g, 0.1)
    restored = Momentum(0.9, nesterov=True)
    restored.load_state_dict(momentum.state_dict())
    assert torch.equal(momentum.apply(x.clone(), g, 0.1), restored.apply(x.clone(), g, 0.1))
    with pytest.raises(ValueError, match="momentum"):
        Momentum(1.0)
