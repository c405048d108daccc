"""The CGA QP projection against its KKT conditions and independent scipy solvers."""

from __future__ import annotations

import numpy as np
import pytest
import quadprog
import torch
from scipy.optimize import minimize, nnls

from cgatrain.algorithms.qp import Projection, project_gradient, project_per_tensor

TOL = 1e-8


def _random_instance(seed: int, m: int, d: int, conflicting: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A self-gradient and m cross-gradients; with ``conflicting`` at least one cross-gradient opposes g."""
    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(d, generator=generator, dtype=torch.float64)
    G = torch.randn(m, d, generator=generator, dtype=torch.float64)
    if conflicting:
        G[0] = -g + 0.3 * torch.randn(d, generator=generator, dtype=torch.float64)  # (G g)_0 < 0
    return g, G


def _check_kkt(g: torch.Tensor, G: torch.Tensor, projection: Projection, lower: float = 0.0) -> None:
    """Dual feasibility, primal feasibility, complementary slackness and stationarity (g_tilde = G^T u + g)."""
    u = projection.dual
    slack = (G @ projection.direction).numpy()
    scale = 1.0 + float(np.abs(G.numpy()).sum(axis=1).max() * np.abs(g.numpy()).max())
    assert np.all(u >= lower - TOL)
    if lower == 0:
        assert np.all(slack >= -TOL * scale)
        assert np.all(np.abs(u * slack) <= TOL * scale * (1 + np.abs(u).max()))
        assert np.all(u[slack > 1e-6 * scale] == 0)  # clearly inactive constraints carry no roundoff dual
    torch.testing.assert_close(projection.direction, G.T @ torch.from_numpy(u) + g, rtol=0, atol=1e-12 * scale)


SHAPES = [(1, 3), (2, 5), (3, 3), (4, 10), (6, 50), (5, 20), (6, 4), (3, 17)]  # (m, d), incl. m > d
INSTANCES = [(seed, m, d) for seed, (m, d) in enumerate(SHAPES)]


@pytest.mark.parametrize("seed,m,d", INSTANCES)
def test_kkt_and_nnls_dual(seed: int, m: int, d: int) -> None:
    g, G = _random_instance(seed, m, d)
    assert (G @ g).min() < 0
    projection = project_gradient(g, G)
    assert projection.changed and projection.dual.shape == (m,)
    _check_kkt(g, G, projection)
    # The dual is a non-negative least squares problem: min_u 1/2 ||G^T u + g||^2, u >= 0.
    u_ref, _ = nnls(G.T.numpy(), -g.numpy())
    np.testing.assert_allclose(projection.direction.numpy(), G.T.numpy() @ u_ref + g.numpy(), atol=1e-6)
    if m <= d:  # u* is unique only when G has full row rank
        np.testing.assert_allclose(projection.dual, u_ref, atol=1e-6)


@pytest.mark.parametrize("seed,m,d", [(10, 1, 3), (11, 2, 4), (12, 3, 6)])
def test_primal_is_closest_point_in_cone(seed: int, m: int, d: int) -> None:
    g, G = _random_instance(seed, m, d)
    g_np, G_np = g.numpy(), G.numpy()
    result = minimize(
        lambda z: 0.5 * np.sum((z - g_np) ** 2),
        x0=np.zeros(d),
        jac=lambda z: z - g_np,
        constraints=[{"type": "ineq", "fun": lambda z: G_np @ z, "jac": lambda z: G_np}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert result.success
    np.testing.assert_allclose(project_gradient(g, G).direction.numpy(), result.x, atol=1e-6)


def test_agreeing_gradients_skip_the_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("quadprog.solve_qp must not be called when G g >= 0")

    monkeypatch.setattr(quadprog, "solve_qp", forbidden)
    g, _ = _random_instance(20, 1, 12, conflicting=False)
    G = torch.stack([g, 2 * g, torch.zeros_like(g), g + 0.01 * torch.ones_like(g)])
    assert (G @ g).min() >= 0
    projection = project_gradient(g, G)
    assert torch.equal(projection.direction, g) and not projection.changed
    np.testing.assert_array_equal(projection.dual, np.zeros(4))


def test_no_neighbours_returns_self_gradient() -> None:
    g = torch.randn(7, dtype=torch.float64)
    projection = project_gradient(g, torch.empty(0, 7, dtype=torch.float64))
    assert torch.equal(projection.direction, g) and projection.dual.shape == (0,) and not projection.changed
    assert projection.direction is not g


@pytest.mark.parametrize("m,d", [(4, 8), (7, 3)])
def test_singular_gram_still_solves(m: int, d: int) -> None:
    g, G = _random_instance(30 + m, m, d)
    if m <= d:
        G = torch.cat([G[:2], G[:2], G[2:]])[:m]  # duplicated rows: rank-deficient Gram
    projection = project_gradient(g, G)
    _check_kkt(g, G, projection)
    u_ref, _ = nnls(G.T.numpy(), -g.numpy())
    np.testing.assert_allclose(projection.direction.numpy(), G.T.numpy() @ u_ref + g.numpy(), atol=1e-6)


def test_margin_bounds_the_dual() -> None:
    g, G = _random_instance(40, 4, 9)
    projection = project_gradient(g, G, margin=0.5)
    assert np.all(projection.dual >= 0.5) and projection.changed
    _check_kkt(g, G, projection, lower=0.5)
    # Even agreeing gradients are moved when the dual is bounded away from 0.
    assert project_gradient(g, g.unsqueeze(0), margin=0.5).changed


def test_dtype_and_device_preserved() -> None:
    g, G = _random_instance(50, 3, 16)
    projection = project_gradient(g.float(), G.float())
    assert projection.direction.dtype == torch.float32 and projection.direction.device == g.device
    reference = project_gradient(g, G).direction.float()
    torch.testing.assert_close(projection.direction, reference, rtol=1e-4, atol=1e-4)


def test_ridge_retry_then_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_solve = quadprog.solve_qp
    ridges: list[float] = []

    def failing_once(P: np.ndarray, *args: object) -> tuple:
        ridges.append(float(P[0, 0]))
        if len(ridges) == 1:
            raise ValueError("matrix G is not positive definite")
        return real_solve(P, *args)

    g, G = _random_instance(60, 2, 5)
    monkeypatch.setattr(quadprog, "solve_qp", failing_once)
    project_gradient(g, G, ridge=1e-6)
    mean_diagonal = float(torch.trace(G @ G.T)) / 2  # quadprog sees the Gram (and ridge) divided by this
    assert len(ridges) == 2 and ridges[1] - ridges[0] == pytest.approx((1e-3 - 1e-6) / mean_diagonal)

    def always_failing(*args: object) -> tuple:
        raise ValueError("matrix G is not positive definite")

    monkeypatch.setattr(quadprog, "solve_qp", always_failing)
    with pytest.raises(RuntimeError, match="QP projection failed"):
        project_gradient(g, G)


def test_per_tensor_equals_separate_projections() -> None:
    g, G = _random_instance(70, 3, 20)
    boundaries = [0, 5, 5, 12, 20]  # includes an empty tensor
    for margin in (0.0, 0.5):
        direction, changed, slices = project_per_tensor(g, G, boundaries, margin, None)
        parts = [project_gradient(g[a:b], G[:, a:b], margin) for a, b in zip(boundaries, boundaries[1:])]
        assert torch.equal(direction, torch.cat([p.direction for p in parts]))
        assert slices == 4 and changed == sum(p.changed for p in parts)
    with pytest.raises(ValueError):
        project_per_tensor(g, G, [0, 10], 0.0, None)
    with pytest.raises(ValueError):
        project_gradient(g, G, margin=-0.1)


@pytest.mark.parametrize("self_scale,cross_scale", [(1e-8, 1e8), (1.0, 1e6), (1e8, 1e-8), (1e-6, 1e-6)])
def test_badly_scaled_gradients(self_scale: float, cross_scale: float) -> None:
    g, G = _random_instance(80, 5, 20)
    g, G = g * self_scale, G * cross_scale
    projection = project_gradient(g, G)
    u_ref, _ = nnls(G.T.numpy(), -g.numpy())
    np.testing.assert_allclose(projection.dual, u_ref, rtol=1e-6, atol=1e-9 * np.abs(u_ref).max())
    reference = G.T.numpy() @ u_ref + g.numpy()
    np.testing.assert_allclose(projection.direction.numpy(), reference, rtol=0, atol=1e-6 * self_scale)


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("where", ["self", "cross"])
def test_non_finite_gradients_are_refused_by_name(margin: float, where: str) -> None:
    g, G = _random_instance(3, 2, 6)
    (g if where == "self" else G[1])[2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        project_gradient(g, G, margin)


def test_one_host_copy_of_both_products_equals_two() -> None:
    """On GPUs G g and G G^T come to the host in one copy (each copy waits for the GPU); same numbers."""
    from cgatrain.algorithms.qp import _products_on_host

    g, G = _random_instance(4, 3, 50)
    dot, gram = _products_on_host(g.float(), G.float(), with_gram=True)
    lazy_dot, no_gram = _products_on_host(g.float(), G.float(), with_gram=False)
    assert no_gram is None and np.array_equal(dot, lazy_dot) and dot.dtype == np.float64
    assert np.array_equal(gram, (G.float() @ G.float().T).double().numpy())


@pytest.mark.parametrize("bad", ["own", "received", "received_inf"])
def test_cga_lets_non_finite_gradients_flow_into_the_model(bad: str) -> None:
    """Every agent's divergence check must see it in the same step, so CGA does not raise mid-round."""
    from torch import nn

    from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
    from cgatrain.topology import build_topology

    model = FlatModel(nn.Linear(3, 2))
    context = AgentContext(0, 3, model, LocalObjective(model, nn.CrossEntropyLoss()), build_topology({"graph": "ring"}, 3), None)  # type: ignore[arg-type]
    cga = get_algorithm("cga")(context, {})
    cga.setup()
    torch.manual_seed(0)
    own, received = torch.ones(model.numel), torch.ones(2, model.numel)  # every G_i g > 0: the QP's shortcut
    # An Inf in one's own gradient, a NaN in a neighbour's, or an Inf there that makes G_i g = +Inf (which the
    # shortcut's test G g >= 0 would pass).
    (own if bad == "own" else received[1])[0] = float("nan") if bad == "received" else float("inf")
    for scope in ("whole", "per_tensor"):
        cga.hparams["qp_scope"] = scope
        assert not torch.isfinite(cga._project(own, received, [1, 2], 0, 0)).all(), scope
    assert torch.isfinite(cga._project(torch.randn(model.numel), torch.randn(2, model.numel), [1, 2], 0, 0)).all()


def test_sliced_products_in_one_copy_equal_each_slices_own() -> None:
    """On GPUs the per-tensor QP brings every slice's G g and G G^T to the host in one copy; same numbers."""
    from cgatrain.algorithms.qp import _products_on_host, _project_with, _sliced_products_on_host

    g, G = _random_instance(5, 2, 40)
    slices = [(0, 7), (7, 7), (7, 30), (30, 40)]  # an empty tensor slice included
    for (a, b), (dot, gram) in zip(slices, _sliced_products_on_host(g, G, slices), strict=True):
        own_dot, own_gram = _products_on_host(g[a:b], G[:, a:b], with_gram=True)
        assert np.array_equal(dot, own_dot) and np.array_equal(gram, own_gram)
        for margin in (0.0, 0.5):
            from_products = _project_with(g[a:b], G[:, a:b], dot, gram, margin, None)
            direct = project_gradient(g[a:b], G[:, a:b], margin)
            assert torch.equal(from_products.direction, direct.direction) and from_products.changed == direct.changed
