"""The QP projection of CGA: turn a self-gradient into a direction that agrees with every cross-gradient.

The primal problem (CGA paper, eq. 4) is ``min_z 1/2 z^T z - g^T z  s.t.  G z >= 0``: the point of the cone
``{z : G z >= 0}`` closest to the self-gradient ``g``, where the rows of ``G`` are the cross-gradients an agent
received. Its dual (eq. 5) is ``min_u 1/2 u^T G G^T u + g^T G^T u  s.t.  u >= lower`` and only has ``m`` (number
of neighbours) variables, so it is the one we solve, with quadprog's Goldfarb-Idnani solver; the direction is then
``g_tilde = G^T u* + g``. A positive ``margin`` is the authors' published variant (GEM's "memory strength"): the
dual is bounded below by ``margin`` instead of 0, which always pulls the direction towards the cross-gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import quadprog
import torch

from cgatrain.transfer import to_device

__all__ = ["Projection", "default_ridge", "project_gradient", "project_per_tensor"]

# How often a ValueError from quadprog (a Gram matrix that is not numerically positive definite) is retried,
# and by how much the ridge grows on each retry.
_RIDGE_RETRIES = 3
_RIDGE_GROWTH = 1e3
# The smallest relative ridge: far above float64 rounding of a Gram matrix (~1e-16), far below anything that
# moves the solution measurably.
_MIN_RELATIVE_RIDGE = 1e-10
# Dual components whose contribution to G g_tilde is below this fraction of max |G g| are solver roundoff.
_SNAP_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Projection:
    """The result of one projection.

    Attributes:
        direction: ``g_tilde = G^T u* + g``, with the dtype and device of the self-gradient.
        dual: the optimal dual variables ``u*``, shape ``(m,)``, float64.
        changed: whether the direction differs from the self-gradient: some ``u*_i > 0`` when ``margin == 0``,
            always True when ``margin > 0`` and there is at least one cross-gradient.
    """

    direction: torch.Tensor
    dual: np.ndarray
    changed: bool


def default_ridge(gram: np.ndarray, grad_dtype: torch.dtype) -> float:
    """The ridge added to the Gram matrix's diagonal when the caller gives none.

    ``G G^T`` is only positive semi-definite: it is singular when cross-gradients are linearly dependent
    (duplicates, zero gradients, or ``m > d``), and quadprog then raises "matrix G is not positive definite".
    The ridge is ``max(1e-10, eps(grad_dtype)) * mean(diag(G G^T))``: relative to the Gram's scale, so it is
    invariant to the gradients' magnitude, and at least the rounding error of the dtype the Gram was computed in
    (float32 Gram matrices can be indefinite by ~1e-7 of their scale). A zero Gram (all cross-gradients zero)
    gets ridge 1, which is harmless there because the dual's linear term ``G g`` is zero too.
    """
    mean_diagonal = float(np.trace(gram)) / gram.shape[0]
    relative = max(_MIN_RELATIVE_RIDGE, float(torch.finfo(grad_dtype).eps))
    ridge = relative * mean_diagonal
    return ridge if np.isfinite(ridge) and ridge >= np.finfo(np.float64).tiny else 1.0


def _solve_dual(gram: np.ndarray, cross_dot_self: np.ndarray, lower: float, ridge: float) -> np.ndarray:
    """Solve ``min_u 1/2 u^T (gram + ridge I) u + cross_dot_self^T u  s.t.  u >= lower``, growing the ridge on failure.

    quadprog's internal tolerances are absolute (it reports "constraints are inconsistent" for Gram matrices of
    scale ~1e12), so it solves the equivalent unit-scale problem in ``v = u / u_scale``:
    ``min_v 1/2 v^T (gram + ridge I) / gram_scale v + (G g / (gram_scale u_scale))^T v  s.t.  v >= lower / u_scale``.
    """
    m = gram.shape[0]
    identity = np.eye(m)
    mean_diagonal = float(np.trace(gram)) / m
    gram_scale = mean_diagonal if np.isfinite(mean_diagonal) and mean_diagonal > 0 else 1.0
    largest_dot = float(np.abs(cross_dot_self).max()) / gram_scale
    u_scale = largest_dot if np.isfinite(largest_dot) and largest_dot > 0 else 1.0
    unit_gram = gram / gram_scale
    unit_linear = -cross_dot_self / (gram_scale * u_scale)  # quadprog minimises 1/2 x^T P x - a^T x: a = -(G g)
    unit_bound = np.full(m, lower / u_scale)
    current_ridge = ridge
    last_error: ValueError | None = None
    for _ in range(_RIDGE_RETRIES + 1):
        try:
            unit_matrix = unit_gram + (current_ridge / gram_scale) * identity
            solution = quadprog.solve_qp(unit_matrix, unit_linear, identity, unit_bound, 0)[0]
            return np.maximum(solution * u_scale, lower)  # clip roundoff below the bound so u* is exactly feasible
        except ValueError as error:
            last_error = error
            # A caller's ridge of 0 cannot grow by multiplication, so escalate from the default scale instead.
            current_ridge = max(current_ridge, _MIN_RELATIVE_RIDGE * gram_scale) * _RIDGE_GROWTH
    raise RuntimeError(
        f"CGA QP projection failed after {_RIDGE_RETRIES} retries (last ridge {current_ridge / _RIDGE_GROWTH:.3g}, "
        f"{m} cross-gradients, Gram diagonal {np.diag(gram)}): {last_error}"
    ) from last_error


def project_gradient(
    self_grad: torch.Tensor, cross_grads: torch.Tensor, margin: float = 0.0, ridge: float | None = None
) -> Projection:
    """Project ``self_grad`` onto the cone of directions with non-negative inner product with every cross-gradient.

    Args:
        self_grad: the agent's flat self-gradient ``g``, shape ``(d,)``.
        cross_grads: the cross-gradients it received as rows of ``G``, shape ``(m, d)``; ``m`` may be 0.
        margin: lower bound of the dual variables (0 is the paper's QP; the authors' code uses 0.5).
        ridge: added to the Gram matrix's diagonal; None uses :func:`default_ridge`. Grown by 1e3 and retried
            (at most 3 times) if quadprog still finds the matrix not positive definite; then RuntimeError.

    Returns:
        The :class:`Projection`. The Gram matrix ``G G^T`` is one matrix product and ``G g`` one matvec in the
        gradients' dtype/device, solved in float64 on the CPU; ``G^T u* + g`` is one matvec on the gradients' device.
    """
    if self_grad.dim() != 1 or cross_grads.dim() != 2 or cross_grads.shape[1] != self_grad.shape[0]:
        shapes = f"{tuple(self_grad.shape)} and {tuple(cross_grads.shape)}"
        raise ValueError(f"expected self_grad (d,) and cross_grads (m, d), got {shapes}")
    _check_bounds(margin, ridge)
    if cross_grads.shape[0] == 0:
        return Projection(self_grad.clone(), np.zeros(0), False)  # clone: callers may update the direction in place
    cross_dot_self, gram = _products_on_host(self_grad, cross_grads, with_gram=self_grad.is_cuda)
    return _project_with(self_grad, cross_grads, cross_dot_self, gram, margin, ridge)


def _project_with(self_grad: torch.Tensor, cross_grads: torch.Tensor, cross_dot_self: np.ndarray, gram: np.ndarray | None,
                  margin: float, ridge: float | None) -> Projection:
    """The projection from G g (and G G^T, computed here when None) on the host; see `project_gradient`."""
    m = cross_grads.shape[0]
    if not np.all(np.isfinite(cross_dot_self)):  # before the shortcut: G_i g = +Inf would pass it and hide the Inf
        raise ValueError("CGA QP projection got non-finite gradients")
    if margin == 0 and bool(np.all(cross_dot_self >= 0)):
        # u* = 0 satisfies the KKT conditions (gradient G g >= 0 at the bound), so g_tilde = g exactly: skip the solver.
        return Projection(self_grad.clone(), np.zeros(m), False)
    if gram is None:
        gram = (cross_grads @ cross_grads.T).double().cpu().numpy()
    if not np.all(np.isfinite(gram)):
        raise ValueError("CGA QP projection got non-finite gradients")
    gram = 0.5 * (gram + gram.T)  # reduced-precision matmuls need not be exactly symmetric
    dual = _solve_dual(gram, cross_dot_self, margin, default_ridge(gram, self_grad.dtype) if ridge is None else ridge)
    # Inactive bounds come back as ~1e-17 roundoff; snap those whose effect (u_i - lower) * |G_i|^2 is far below
    # the ridge's own perturbation of G g back to the bound, so `changed` reflects the QP and not rounding.
    negligible = (dual - margin) * np.diag(gram) <= _SNAP_TOLERANCE * float(np.abs(cross_dot_self).max())
    dual = np.where(negligible, margin, dual)
    changed = margin > 0 or bool(np.any(dual > 0))
    if not changed:
        return Projection(self_grad.clone(), dual, False)
    dual_tensor = to_device(dual, self_grad.device).to(self_grad.dtype)
    return Projection(torch.addmv(self_grad, cross_grads.T, dual_tensor), dual, True)


def _check_bounds(margin: float, ridge: float | None) -> None:
    if margin < 0 or (ridge is not None and ridge < 0):
        raise ValueError(f"margin and ridge must be >= 0, got {margin} and {ridge}")


def _products_on_host(self_grad: torch.Tensor, cross_grads: torch.Tensor, with_gram: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """G g in float64 on the host, and G G^T too when `with_gram` (one GPU-to-host copy instead of two:
    each waits for the GPU); on CPUs the Gram matrix waits until the solver needs it."""
    if not with_gram:
        return (cross_grads @ self_grad).double().cpu().numpy(), None
    return _sliced_products_on_host(self_grad, cross_grads, [(0, self_grad.shape[0])])[0]


def project_per_tensor(
    self_grad: torch.Tensor,
    cross_grads: torch.Tensor,
    boundaries: Sequence[int],
    margin: float = 0.0,
    ridge: float | None = None,
) -> tuple[torch.Tensor, int, int]:
    """The CGA authors' published variant: one independent QP projection per parameter tensor.

    Args:
        self_grad: flat self-gradient, shape ``(d,)``.
        cross_grads: flat cross-gradients, shape ``(m, d)``.
        boundaries: cumulative offsets ``[0, n1, n1 + n2, ..., d]`` of the parameter tensors in the flat vector.
        margin, ridge: as in :func:`project_gradient`, applied to each slice (a None ridge is per slice).

    Returns:
        ``(direction, slices whose projection changed, number of slices)``.
    """
    offsets = [int(offset) for offset in boundaries]
    d = self_grad.shape[0]
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != d or any(b < a for a, b in zip(offsets, offsets[1:])):
        raise ValueError(f"boundaries must rise from 0 to {d}, got {offsets}")
    _check_bounds(margin, ridge)
    slices = list(zip(offsets, offsets[1:]))
    if cross_grads.shape[0] == 0 or not self_grad.is_cuda:
        projections = [project_gradient(self_grad[a:b], cross_grads[:, a:b], margin, ridge) for a, b in slices]
    else:  # every slice's G g and G G^T in one GPU-to-host copy: one wait for the GPU per step, not one per tensor
        products = _sliced_products_on_host(self_grad, cross_grads, slices)
        projections = [_project_with(self_grad[a:b], cross_grads[:, a:b], dot, gram, margin, ridge)
                       for (a, b), (dot, gram) in zip(slices, products)]
    return torch.cat([p.direction for p in projections]), sum(int(p.changed) for p in projections), len(slices)


def _sliced_products_on_host(self_grad: torch.Tensor, cross_grads: torch.Tensor,
                             slices: Sequence[tuple[int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(G_s g_s, G_s G_s^T) in float64 on the host for each slice s, brought over in one copy."""
    m = cross_grads.shape[0]
    parts = [torch.cat([cross_grads[:, a:b] @ self_grad[a:b], (cross_grads[:, a:b] @ cross_grads[:, a:b].T).reshape(-1)])
             for a, b in slices]
    host = torch.cat(parts).double().cpu().numpy()
    rows = m + m * m
    return [(host[i * rows : i * rows + m], host[i * rows + m : (i + 1) * rows].reshape(m, m)) for i in range(len(slices))]
