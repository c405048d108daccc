"""The algorithm interface and registry: an algorithm is its state, its rounds and its update."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from cgatrain.algorithms.momentum import Momentum
from cgatrain.algorithms.objective import FlatModel, LocalObjective
from cgatrain.comm import NeighborExchange
from cgatrain.compression import Compressor, build_compressor
from cgatrain.registry import Registry, require_class
from cgatrain.topology import Topology


@dataclass
class AgentContext:
    """What an algorithm may use: its agent's model and objective, the graph and the wire.

    `compressor` is the compressor CONFIG (`{"name": ..., **options}`, with `compressor=auto`
    already resolved); an algorithm builds its codec from it with `Algorithm.build_compressor()`
    and by convention keeps the built `Compressor` as `self.compressor`, which is what
    `state_dict` checkpoints.
    """

    rank: int
    world_size: int
    model: FlatModel
    objective: LocalObjective
    topology: Topology
    exchange: NeighborExchange
    compressor: Mapping[str, Any] = field(default_factory=lambda: {"name": "identity"})
    seed: int = 0  # the run's seed, shared by every agent (for draws all agents must agree on)
    samples: int = 1  # size of this agent's training shard
    steps_per_epoch: int = 1  # training steps in one epoch of the trainer


class Algorithm(ABC):
    """One decentralized optimizer, run by every agent in lock step; `@register` makes it `algorithm=NAME`.

    Class attributes a subclass declares:
    - `name`: the NAME of `algorithm=NAME` (required; a name another class holds is refused).
    - `rounds`: the names of the communication rounds one step posts on `ctx.exchange`, in posting
      order. They name the byte/time counters of `summary.json` (`bytes_sent_by_round`);
      tests/test_staging_distributed.py checks that the algorithms it runs post no other round
      than these, `"buffers"` (BatchNorm buffer mixing, `mix_buffers`) and names starting with
      `_` (internal) excepted.
    - `mixing`: the stochasticity its mixing matrices must have ("row", "column", "doubly" or
      "none"), checked against the topology before any process starts (`required_mixing`
      may make it depend on the options).
    - `hyperparameters`: every option it takes, with its default; `algorithm.KEY=VALUE` sets one,
      merged into `self.hparams`. Unknown keys are refused before the run. A `momentum` entry also
      makes `setup` build `self.momentum` (a `Momentum`, see `build_momentum`).
    - `needs_undirected`: True when replies travel back along the edges it receives on.
    - `uses_compressor`: True when `compressor=NAME` changes what it sends; otherwise any compressor
      but `identity` is refused. `default_compressor` is what `compressor=auto` means for it.

    Per run, every agent calls `setup()` once, then `step(lr, step, epoch)` per training step
    (`step` counted from the start of the run, not of the epoch; the same on every agent), then
    `finish`. `step` computes the gradient (`ctx.objective.self_gradient()` fills
    `ctx.model.grad`), posts its rounds on `ctx.exchange` (`post`/`exchange`/`gossip`,
    `all_reduce_mean`), updates `ctx.model.params` in place and returns the local loss (the 0-dim tensor
    `self_gradient` returns, or a float; the trainer reads it only every `train.log_every` steps). An agent
    and its peers must post matching rounds in the same order, or they deadlock.

    State: tensors in `self.state` are saved in checkpoints and restored on resume, except keys
    starting with `_` (scratch buffers such as `_mixed`); so are `self.momentum`, the RNG state of
    `self.compressor` and `dense_bytes_sent`. A compressing algorithm adds to `dense_bytes_sent` the
    bytes its rounds would have carried uncompressed, from which the run's compression factor is
    computed. `check_hyperparameters` and `check_topology` refuse bad options and graphs in the
    parent, before any process starts (raise ValueError with a message naming the key).
    """

    name: ClassVar[str]
    rounds: ClassVar[tuple[str, ...]] = ()
    mixing: ClassVar[str] = "none"
    hyperparameters: ClassVar[dict[str, Any]] = {}
    needs_undirected: ClassVar[bool] = False  # True if replies travel back along the edges it receives on
    undirected_because: ClassVar[str] = "sends replies back along each edge"  # why, in the refusal of a directed graph
    uses_compressor: ClassVar[bool] = False  # True if `compressor=NAME` changes what it sends
    default_compressor: ClassVar[str] = "identity"  # what `compressor=auto` means for it

    def __init__(self, ctx: AgentContext, hparams: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.hparams = {**self.hyperparameters, **{k: v for k, v in hparams.items() if k != "name"}}
        self.state: dict[str, torch.Tensor] = {}
        self.momentum: Momentum | None = None
        # Bytes the rounds would have carried uncompressed; compressing algorithms add to it.
        self.dense_bytes_sent = 0

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        """Reject unknown keys and out-of-range values before any process starts."""
        unknown = sorted(set(hparams) - set(cls.hyperparameters) - {"name"})
        if unknown:
            raise ValueError(f"algorithm {cls.name!r} has no option(s) {unknown}; it takes {sorted(cls.hyperparameters)}")
        momentum = hparams.get("momentum", cls.hyperparameters.get("momentum", 0.0))
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"algorithm.momentum must be a number in [0, 1), got {momentum!r}")

    @classmethod
    def check_run_length(cls, hparams: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> None:
        """Refuse options under which a run of `total_steps` would never communicate (a round longer than the run)."""

    @classmethod
    def required_mixing(cls, hparams: Mapping[str, Any]) -> str:
        """The stochasticity the mixing matrices must have with these options (default: `mixing`)."""
        return cls.mixing

    @classmethod
    def topology_role(cls, hparams: Mapping[str, Any]) -> str | None:
        """None when the agents talk along the topology's edges, else how they talk instead (for the banner)."""
        return None

    @classmethod
    def ignored_weights(cls, hparams: Mapping[str, Any]) -> str | None:
        """None when the topology's mixing weights enter the update, else what is used instead (for the banner)."""
        return None

    @classmethod
    def check_topology(cls, topology: Topology, hparams: Mapping[str, Any]) -> None:
        """Reject a topology this algorithm cannot run on (beyond `mixing`), before any process starts."""

    def setup(self) -> None:
        """Called once after the process group is up, before the first step."""
        if "momentum" in self.hyperparameters:
            self.momentum = self.build_momentum()

    def build_momentum(self) -> Momentum:
        """The algorithm's momentum: heavy-ball with the velocity buffer unless a subclass says otherwise."""
        return Momentum(float(self.hparams["momentum"]))

    def heavy_ball(self, direction: torch.Tensor, lr: float) -> torch.Tensor:
        """v <- beta v - lr * direction in the shared momentum buffer; returns v."""
        return self.momentum.velocity(direction, lr)

    def evaluated_params(self) -> torch.Tensor | None:
        """The parameters this agent's metrics should score, when they are not its working model (FedAvg)."""
        return None

    @abstractmethod
    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor | float:
        """Run one step on the objective's current minibatch; return the local loss."""

    def neighbors(self, step: int, epoch: int) -> tuple[list[int], list[int]]:
        """(in_neighbors, out_neighbors) of this agent at this step."""
        topology, rank = self.ctx.topology, self.ctx.rank
        return topology.in_neighbors(rank, step, epoch), topology.out_neighbors(rank, step, epoch)

    def gradient_while_gossiping(self, step: int, epoch: int) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Round "model" posted first, the self-gradient computed while it flies; (loss, received models)."""
        ctx = self.ctx
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        pending, received = ctx.exchange.post_gossip("model", ctx.model.params, out_neighbors, in_neighbors)
        loss = ctx.objective.self_gradient()
        pending.wait()
        return loss, received

    def mix(self, received: Mapping[int, torch.Tensor], step: int, epoch: int) -> torch.Tensor:
        """sum_l pi_jl x_l over this agent and its in-neighbours, in a reused buffer."""
        weights = self.ctx.topology.mixing_matrix(step, epoch)[self.ctx.rank]
        mixed = self.state.get("_mixed")
        if mixed is None:
            mixed = self.state["_mixed"] = torch.empty_like(self.ctx.model.params)
        torch.mul(self.ctx.model.params, float(weights[self.ctx.rank]), out=mixed)
        for peer, tensor in received.items():
            mixed.add_(tensor, alpha=float(weights[peer]))
        return mixed

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """`model.buffers=average`: mix the model's buffers (in place, round "buffers") as `step` mixed the parameters.

        Called after every step. Default: an algorithm that mixes by a matrix (`mixing` other than
        "none") gossips them over the step's neighbours (`gossip_buffers`); one that never mixes leaves
        them alone. Algorithms that mix otherwise (all-reduce, server average, pairs, every H steps) override it.
        """
        if self.mixing != "none":
            self.gossip_buffers(buffers, step, epoch)

    def gossip_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """b_j <- sum_l pi_jl b_l over this agent and the step's in-neighbours (uniform if the row is not stochastic)."""
        ctx = self.ctx
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        received = ctx.exchange.gossip("buffers", buffers, out_neighbors, in_neighbors)
        row = ctx.topology.mixing_matrix(step, epoch)[ctx.rank]
        members = [ctx.rank, *received]
        weights = [float(row[peer]) for peer in members]
        if abs(sum(weights) - 1.0) > 1e-6:  # column-stochastic (push-sum) rows do not average
            weights = [1.0 / len(members)] * len(members)
        mixed = buffers * weights[0]
        for peer, weight in zip(received, weights[1:]):
            mixed.add_(received[peer], alpha=weight)
        buffers.copy_(mixed)

    def finish(self, step: int, epoch: int) -> None:
        """Called once after the last training step, before the final evaluation (SCSP gossips here)."""

    def epoch_metrics(self) -> dict[str, float]:
        """Algorithm-specific numbers for this epoch (averaged over agents by the trainer); resets them."""
        return {}

    def build_compressor(self) -> Compressor:
        """This agent's compressor, from `ctx.compressor`, with its private randomness bound to the rank."""
        compressor = build_compressor(self.ctx.compressor)
        compressor.bind_agent(self.ctx.rank)
        return compressor

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors needed to resume (momentum buffers, error memories, push-sum weights, compressor RNG)."""
        state = {key: value for key, value in self.state.items() if not key.startswith("_")}
        for key, value in state.items():  # else the checkpoint fails on .detach() without naming what
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"algorithm {self.name!r}: self.state[{key!r}] is a {type(value).__name__}; checkpoints save "
                                "only tensors there (use torch.tensor(value), or a key starting with '_' for scratch)")
        if self.momentum is not None:
            state.update(self.momentum.state_dict())
        compressor = getattr(self, "compressor", None)
        if compressor is not None:
            state.update({f"compressor_rng:{device}": rng for device, rng in compressor.rng_state().items()})
        state["dense_bytes_sent"] = torch.tensor(self.dense_bytes_sent, dtype=torch.float64)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what `state_dict` saved, after `setup()`: `self.state` tensors (moved to the model's
        device), the momentum buffer, the compressor's RNG state and `dense_bytes_sent`.

        Every other key goes into `self.state` as saved, so a subclass that keeps state outside
        `self.state` (CGA's error memories, saved as `error:KEY`) takes it from there on first use.
        """
        rng = {key.split(":", 1)[1]: value for key, value in state.items() if key.startswith("compressor_rng:")}
        compressor = getattr(self, "compressor", None)
        if rng and compressor is not None:
            compressor.load_rng_state(rng)
        if self.momentum is not None:
            self.momentum.load_state_dict(state, self.ctx.model.params.device)
        for key, value in state.items():
            if key == "dense_bytes_sent":
                self.dense_bytes_sent = int(value)
            elif key == Momentum.state_key and self.momentum is not None:
                continue
            elif not key.startswith("compressor_rng:"):
                self.state[key] = value.to(self.ctx.model.params.device)


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make the algorithm selectable as `algorithm=NAME` (a name taken by another class is refused)."""
    from cgatrain.topology.mixing import STOCHASTICITY_REQUIREMENTS

    require_class(cls, "register", Algorithm)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"algorithm class {cls.__qualname__} needs a class attribute `name`, the NAME of algorithm=NAME")
    if cls.mixing not in STOCHASTICITY_REQUIREMENTS:
        raise TypeError(f"algorithm {name!r}: class attribute `mixing` must be one of {STOCHASTICITY_REQUIREMENTS}, got {cls.mixing!r}")
    if isinstance(cls.rounds, str) or not isinstance(cls.rounds, (tuple, list)) or not all(isinstance(r, str) and r for r in cls.rounds):
        raise TypeError(f"algorithm {name!r}: class attribute `rounds` must be a tuple of round names, e.g. rounds = ('model',), "
                        f"got {cls.rounds!r}")
    if not isinstance(cls.hyperparameters, Mapping):
        raise TypeError(f"algorithm {name!r}: class attribute `hyperparameters` must be a dict of options and their defaults, "
                        f"got {cls.hyperparameters!r}")
    if inspect.isabstract(cls):  # no step(): refused here rather than when the first agent builds it
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(f"algorithm {name!r}: class {cls.__qualname__} does not define {missing}; step(lr, step, epoch) runs one "
                        "training step and returns the loss")
    return ALGORITHMS.add(name, cls)


def get_algorithm(name: str) -> type[Algorithm]:
    """The registered algorithm class called `name`."""
    return ALGORITHMS.get(name)


def resolve_compressor(cfg: Mapping[str, Any] | None, algorithm: type[Algorithm]) -> dict[str, Any]:
    """The compressor config an algorithm runs with: `auto` means the algorithm's own default."""
    chosen = dict(cfg or {"name": "auto"})
    if chosen.get("name") is None:  # a compressor config file without `name` must not quietly mean auto
        raise ValueError("compressor.name is missing: a compressor config names its compressor (name: auto for the "
                         f"algorithm's own); got {chosen}")
    if chosen["name"] == "auto":
        return _auto_compressor(chosen, algorithm)
    if chosen["name"] != "identity" and not algorithm.uses_compressor:
        raise ValueError(f"algorithm {algorithm.name!r} sends uncompressed messages; compressor={chosen['name']} needs a compressing algorithm")
    return chosen


def _auto_compressor(chosen: Mapping[str, Any], algorithm: type[Algorithm]) -> dict[str, Any]:
    """`compressor=auto`: the algorithm's own compressor with the options set (non-null); others are refused."""
    from cgatrain.compression.base import COMPRESSORS, compressor_options

    name = algorithm.default_compressor
    options = {str(key): value for key, value in chosen.items() if key != "name" and value is not None}
    accepted = compressor_options(COMPRESSORS.get(name)) if name in COMPRESSORS else []
    refused = sorted(set(options) - set(accepted))
    if refused:
        takes = f"it takes {', '.join('compressor.' + key for key in accepted)}" if accepted else "it takes no options"
        raise ValueError(f"compressor=auto is {name} for algorithm={algorithm.name}, which would ignore "
                         f"{', '.join('compressor.' + key for key in refused)}; {takes}")
    return {"name": name, **options}
