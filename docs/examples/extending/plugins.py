"""Out-of-tree plugins for cgatrain: one of each pluggable kind, registered on import.

`run.py` imports this module and then starts cgatrain, so every name below is selectable from the
command line, e.g. `python run.py --config-dir conf experiment=blobs_line`. See docs/extending.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from cgatrain.algorithms import Algorithm, register
from cgatrain.compression import Compressor, register_compressor
from cgatrain.compression.base import check_flat, check_payload
from cgatrain.data.common import DataError, DatasetSplit, float_option, int_option
from cgatrain.data.datasets import register_dataset
from cgatrain.data.partition import register_partition
from cgatrain.models import register_model

# --- a compressor: `compressor=halfprec` ---------------------------------------------------------

_WIRE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@register_compressor
class HalfPrecision(Compressor):
    """The tensor cast to 16-bit floats: payload `[flat as float16 or bfloat16]`, 2 bytes per element.

    Options are the constructor's keyword arguments (`compressor.precision=bfloat16`); unknown
    keys are refused before the run starts. Deterministic, so it needs no `bind_agent`/`rng_state`.
    """

    name = "halfprec"

    def __init__(self, precision: str = "float16") -> None:
        if precision not in _WIRE_DTYPES:
            raise ValueError(f"compressor.precision must be one of {sorted(_WIRE_DTYPES)}, got {precision!r}")
        self.precision = precision
        self.wire_dtype = _WIRE_DTYPES[precision]

    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`[flat]` in the wire dtype."""
        check_flat(flat)
        return [flat.to(self.wire_dtype).contiguous()]

    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The received values back in `dtype`."""
        check_payload(self, payload, numel, dtype)
        return payload[0].reshape(numel).to(dtype)

    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """One receive buffer of `numel` wire-dtype elements."""
        return [torch.empty(numel, dtype=self.wire_dtype, device=device)]


# --- an algorithm: `algorithm=lazy_dpsgd` ------------------------------------------------------


@register
class LazyDPSGD(Algorithm):
    """D-PSGD with a damped gossip step and optional heavy-ball momentum; agent j, per step:

        w_j = (1 - a) x_j + a sum_l pi_jl C(x_l)      (C(x_j) = x_j: an agent's own model is exact)
        v_j = beta v_j - lr g_j(x_j) ;  x_j = w_j + v_j

    with a = `damping` in (0, 1], beta = `momentum`, C the compressor (`compressor=auto` is
    `halfprec`). With a = 1, beta = 0 and `compressor=identity` this is `algorithm=dpsgd`.
    """

    name = "lazy_dpsgd"
    rounds = ("model",)  # the one round each step posts, by the name passed to ctx.exchange
    mixing = "doubly"  # pi must be doubly stochastic: checked before any process starts
    uses_compressor = True  # `compressor=NAME` changes what the "model" round carries
    default_compressor = "halfprec"
    hyperparameters: ClassVar[dict[str, Any]] = {"damping": 0.5, "momentum": 0.0}  # the options and their defaults

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        """Unknown keys and `momentum` are checked by the base class; `damping` here."""
        super().check_hyperparameters(hparams)
        damping = hparams.get("damping", cls.hyperparameters["damping"])
        if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0.0 < float(damping) <= 1.0:
            raise ValueError(f"algorithm.damping must be a number in (0, 1], got {damping!r}")

    def setup(self) -> None:
        super().setup()  # builds self.momentum, since `momentum` is a hyperparameter
        self.compressor = self.build_compressor()  # from ctx.compressor (the config), bound to this rank

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        params = ctx.model.params
        self.compressor.set_step(step)  # a no-op except for codecs whose randomness both ends share
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        payload = self.compressor.compress(params)
        buffers = {peer: self.compressor.payload_like(params.numel(), params.dtype, params.device) for peer in in_neighbors}
        pending = ctx.exchange.post("model", {peer: payload for peer in out_neighbors}, buffers)
        loss = ctx.objective.self_gradient()  # g_j(x_j) into ctx.model.grad while the round flies
        pending.wait()
        self.dense_bytes_sent += len(out_neighbors) * params.numel() * params.element_size()
        received = {peer: self.compressor.decompress(buffers[peer], params.numel(), params.dtype) for peer in in_neighbors}
        mixed = self.mix(received, step, epoch)  # sum_l pi_jl C(x_l), in a reused buffer
        damping = float(self.hparams["damping"])
        mixed.mul_(damping).add_(params, alpha=1.0 - damping)
        self.momentum.apply(mixed, ctx.model.grad, lr, out=params)
        return loss


# --- a model: `model=mlp2` -----------------------------------------------------------------------

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


@register_model("mlp2")
def build_mlp2(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """Two hidden layers of `model.width` units (default 64) with `model.activation` tanh (default) | relu."""
    width = int(cfg.get("width") or 64)
    activation = str(cfg.get("activation") or "tanh")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"model.activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    act = _ACTIVATIONS[activation]
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), act(),
                         nn.Linear(width, width), act(), nn.Linear(width, num_outputs))


# --- a dataset: `data=blobs` ---------------------------------------------------------------------


@register_dataset("blobs")
def load_blobs(cfg: Mapping[str, Any]) -> DatasetSplit:
    """Gaussian blobs: `data.classes` clusters of unit-variance points in `data.dim` dimensions, seeded by `data.seed`."""
    classes = int_option(cfg, "classes", 3, minimum=2)
    dim = int_option(cfg, "dim", 8, minimum=1)
    samples = int_option(cfg, "samples", 600, minimum=2 * classes)
    test_fraction = float_option(cfg, "test_fraction", 0.2)
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(int_option(cfg, "seed", 0))
    centers = rng.normal(scale=3.0, size=(classes, dim))
    labels = rng.integers(classes, size=samples)
    points = (centers[labels] + rng.normal(size=(samples, dim))).astype(np.float32)
    cut = round(samples * (1 - test_fraction))
    return DatasetSplit(
        name="blobs",
        train_x=torch.from_numpy(points[:cut]), train_y=torch.from_numpy(labels[:cut]),
        test_x=torch.from_numpy(points[cut:]), test_y=torch.from_numpy(labels[cut:]),
        num_classes=classes, input_shape=(dim,), task="classification",
    )


# --- a partition: `partition=sorted` -------------------------------------------------------------


@register_partition("sorted")
def sorted_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Samples sorted by label and cut into `num_agents` contiguous blocks (each agent sees few classes)."""
    return list(np.array_split(np.argsort(labels, kind="stable"), num_agents))
