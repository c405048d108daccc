"""The compressor interface and registry: a compressor turns one flat tensor into wire payload tensors and back."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch

from cgatrain.registry import Registry, failure, origin, require_class

_META = torch.device("meta")


class Compressor(ABC):
    """A codec for one flat tensor at a time; one instance per agent serves every stream of that agent.

    The payload is a list of tensors so that codecs with several parts (top-k values and
    indices, quantized bits and a norm) travel through the same `NeighborExchange.post` call;
    `payload_like` gives receivers preallocated buffers of exactly the shapes and dtypes
    `compress` produces, so algorithms never need to know which codec they run.

    Encoding keeps no memory of earlier messages (error feedback lives in `ErrorFeedback`, outside
    the codec), so one instance can encode to and decode from many peers. A codec may still hold
    state that is not about messages:
    - private randomness (qsgd's dither): seeded per agent in `bind_agent`, saved and restored
      through `rng_state`/`load_rng_state` so a resumed run draws the same numbers;
    - shared randomness (randomk's mask): `set_step(step)` selects the round, and sender and
      receiver must set the same step.
    The constructor's keyword arguments are the codec's options (`compressor.KEY=VALUE`).
    """

    name: ClassVar[str]

    @abstractmethod
    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """The payload tensors that go on the wire for the 1-D tensor `flat`."""

    @abstractmethod
    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dense 1-D tensor of `numel` elements and `dtype` (the sender's input dtype) that `payload` encodes.

        The dtype is an argument rather than remembered state so that one instance can decode
        payloads from many senders; receivers know it from their own parameters.
        """

    @abstractmethod
    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Uninitialised receive buffers with the shapes and dtypes `compress` gives for `numel` elements of `dtype`."""

    def payload_nbytes(self, numel: int, dtype: torch.dtype) -> int:
        """Bytes on the wire for one compressed tensor of `numel` elements of `dtype`."""
        # Meta tensors carry shapes and dtypes without memory, so this can never disagree with payload_like.
        return sum(t.numel() * t.element_size() for t in self.payload_like(numel, dtype, _META))

    def set_step(self, step: int) -> None:
        """Called by compressing algorithms before each step's rounds, with the step counted from the run's start.

        A no-op here; codecs whose randomness both ends derive from the step (randomk) override it.
        """

    def bind_agent(self, rank: int) -> None:
        """Called once by the agent that owns this instance; compressors with private randomness reseed per agent."""

    def rng_state(self) -> dict[str, torch.Tensor]:
        """Generator states to checkpoint, so a resumed run draws the same randomness."""
        return {}

    def load_rng_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what `rng_state` returned."""

    def compress_decompress(self, flat: torch.Tensor) -> torch.Tensor:
        """What a receiver of `flat`'s payload reconstructs (in `flat`'s dtype); error feedback subtracts it."""
        return self.decompress(self.compress(flat), flat.numel(), flat.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_flat(flat: torch.Tensor) -> None:
    """Reject what no codec here encodes: non-1-D, empty or non-floating tensors."""
    if flat.dim() != 1 or flat.numel() == 0:
        raise ValueError(f"compressors take a non-empty 1-D tensor, got shape {tuple(flat.shape)}")
    if not flat.is_floating_point():
        raise ValueError(f"compressors take floating-point tensors, got {flat.dtype}")


def check_payload(compressor: Compressor, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype) -> None:
    """Raise if `payload` lacks the part count, sizes and dtypes `compressor.payload_like` gives for `numel` x `dtype`."""
    expected = compressor.payload_like(numel, dtype, _META)
    if len(payload) != len(expected):
        raise ValueError(f"{compressor.name} payload has {len(payload)} tensor(s), expected {len(expected)}")
    for index, (got, want) in enumerate(zip(payload, expected)):
        if got.numel() != want.numel() or got.dtype != want.dtype:
            raise ValueError(
                f"{compressor.name} payload part {index} is {got.dtype}[{got.numel()}], expected {want.dtype}[{want.numel()}]"
            )


COMPRESSORS: Registry[type[Compressor]] = Registry("compressor")

CompressorType = TypeVar("CompressorType", bound=type[Compressor])


def register_compressor(cls: CompressorType) -> CompressorType:
    """Class decorator: make `cls` buildable by its `name` from a config."""
    require_class(cls, "register_compressor", Compressor)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty string class attribute `name` to be registered")
    return COMPRESSORS.add(name, cls)


def compressor_options(cls: type[Compressor]) -> list[str]:
    """The keyword options a compressor class accepts: its constructor's parameters."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def build_compressor(cfg: Mapping[str, Any]) -> Compressor:
    """The compressor `cfg["name"]`, built with every other key of `cfg` as a keyword option."""
    if "name" not in cfg:
        raise ValueError(f"compressor config needs a `name`; known compressors: {sorted(COMPRESSORS)}")
    name = str(cfg["name"])
    if name not in COMPRESSORS:
        raise ValueError(f"unknown compressor {name!r}; known compressors: {sorted(COMPRESSORS)}")
    cls = COMPRESSORS.get(name)
    options = {str(key): value for key, value in cfg.items() if key != "name"}
    known = compressor_options(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"compressor {name!r} has no option(s) {unknown}; it takes {sorted(known)}")
    return cls(**options)


def _parts(payload: Sequence[torch.Tensor]) -> str:
    return "[" + ", ".join(f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}" for t in payload) + "]"


def check_compressor(cfg: Mapping[str, Any]) -> Compressor:
    """`build_compressor`, then what the wire relies on, before any agent starts: `compress` of a few float32
    vectors gives exactly the shapes and dtypes of `payload_like` (receivers allocate their buffers with it:
    a smaller one aborts the run in gloo, a larger one reads garbage), and `decompress` gives the vector back
    in its size and dtype. A ValueError names `compressor=NAME`; what the codec's own code raises is said with its type."""
    name = cfg.get("name")
    cls = COMPRESSORS.get(str(name)) if str(name) in COMPRESSORS else None
    try:
        compressor = build_compressor(cfg)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"compressor={name}: {origin(cls)}({', '.join(f'{k}={v!r}' for k, v in cfg.items() if k != 'name')}) "
                         f"raised {failure(error)}") from error
    for numel in (37, 1024):
        expected = _call(name, f"payload_like({numel}, torch.float32)", compressor.payload_like, numel, torch.float32, torch.device("cpu"))
        _call(name, "bind_agent(0)", compressor.bind_agent, 0)
        _call(name, "set_step(0)", compressor.set_step, 0)
        payload = _call(name, f"compress() of {numel} float32 values", compressor.compress, torch.linspace(-1.0, 1.0, numel))
        if not isinstance(payload, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in payload):
            raise ValueError(f"compressor={name}: compress() must return a list of tensors, got {type(payload).__qualname__}")
        if len(payload) != len(expected) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(payload, expected)):
            raise ValueError(f"compressor={name}: compress() of {numel} float32 values gives {_parts(payload)}, but "
                             f"payload_like({numel}, torch.float32) gives {_parts(expected)}; they must agree in shape and "
                             "dtype (receivers allocate their buffers with payload_like)")
        dense = _call(name, f"decompress() of {numel} values", compressor.decompress, payload, numel, torch.float32)
        if not isinstance(dense, torch.Tensor) or dense.shape != (numel,) or dense.dtype != torch.float32:
            got = _parts([dense]).strip("[]") if isinstance(dense, torch.Tensor) else type(dense).__qualname__
            raise ValueError(f"compressor={name}: decompress() of {numel} float32 values gives {got}, expected float32[{numel}]")
    return compressor


def _call(name: Any, what: str, method: Any, *args: Any) -> Any:
    """`method(*args)`; whatever it raises becomes a ValueError naming `compressor=name` and `what` was called."""
    try:
        return method(*args)
    except Exception as error:
        raise ValueError(f"compressor={name}: {what} raised {failure(error)}") from error
