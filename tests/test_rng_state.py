"""The generator states a checkpoint carries (train/rng.py): CPU always, the GPU's only on a GPU."""

from __future__ import annotations

import torch

from cgatrain.train.rng import load_rng_state, rng_state


def test_cpu_state_round_trips_and_has_no_gpu_entry() -> None:
    cpu = torch.device("cpu")
    saved = rng_state(cpu)
    assert set(saved) == {"rng"}
    first = torch.rand(5)
    torch.rand(50)
    load_rng_state(saved, cpu)
    assert torch.equal(torch.rand(5), first)


def test_a_gpu_entry_is_ignored_on_the_cpu() -> None:
    """A checkpoint written on a GPU resumes on the CPU (the GPU generator is not touched there)."""
    cpu = torch.device("cpu")
    saved = {**rng_state(cpu), "cuda_rng": torch.zeros(16, dtype=torch.uint8)}
    first = torch.rand(3)
    load_rng_state(saved, cpu)
    assert torch.equal(torch.rand(3), first)
