"""CUDA paths, run with `pytest -m gpu` on a machine with a GPU (skipped without one, see conftest.py).

Every algorithm on CUDA against its single-process reference; several agents sharing one GPU over
staged Gloo; NCCL with one agent per GPU (world size 1 on a one-GPU machine); the same training
run on CPU and GPU; vmap cross-gradients on CUDA against the loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from device_agents import (
    CASES,
    COMPLETE,
    RING,
    every_case,
    reference_for,
    trajectory_on,
)
from multiproc import run_agents
from test_algorithms_distributed import make_data, make_model
from test_cli import TINY, cgatrain, final_params
from torch import nn

from cgatrain.algorithms import FlatModel, LocalObjective
from cgatrain.algorithms.cross_grad import CrossGradients

pytestmark = [pytest.mark.gpu, pytest.mark.multiproc, pytest.mark.timeout(300)]

ALL_CASES = [case for case, *_ in CASES]
# Cases whose graphs exist for any number of agents (the directed custom graph needs 4).
ANY_SIZE = [case for case, _, _, topology_cfg, _ in CASES if topology_cfg in (RING, COMPLETE)]


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _assert_matches_reference(results: list[dict], cases: list[str], world_size: int, steps: int, lr: float, shards: list) -> None:
    for case in cases:
        expected = reference_for(case, world_size, steps, lr, shards)
        for rank, agent in enumerate(results):
            torch.testing.assert_close(agent[case]["trajectory"], expected[rank], rtol=1e-6, atol=1e-7, msg=f"{case}: agent {rank} on {agent[case]['device']}")


def test_every_algorithm_on_cuda_matches_its_reference(tmp_path: Path) -> None:
    """4 agents on the GPUs round-robin over Gloo (staged through pinned host buffers)."""
    world_size, steps, lr = 4, 5, 0.1
    shards = make_data(world_size)
    results = run_agents(every_case, world_size, tmp_path, steps, lr, shards, "cuda", ALL_CASES, on_gpu=True, timeout_s=280)
    _assert_matches_reference(results, ALL_CASES, world_size, steps, lr, shards)
    for agent in results:
        assert all(r["device"].startswith("cuda") and r["staged"] and r["pinned"] and r["backend"] == "gloo" for r in agent.values())


@pytest.mark.parametrize("world_size", [2, 3, 4, 5])
def test_agents_sharing_one_gpu_over_staged_gloo(tmp_path: Path, world_size: int) -> None:
    steps, lr = 6, 0.1
    shards = make_data(world_size)
    cases = ["dpsgd", "cga-paper", "compcga-sign", "centralized"]
    results = run_agents(_on_first_gpu, world_size, tmp_path, steps, lr, shards, cases, on_gpu=True)
    _assert_matches_reference(results, cases, world_size, steps, lr, shards)
    assert all(agent[case]["device"] == "cuda:0" and agent[case]["staged"] for agent in results for case in cases)


def _on_first_gpu(rank: int, world_size: int, steps: int, lr: float, shards: list, cases: list[str]) -> dict:
    torch.cuda.set_device(0)  # every agent on one GPU, whatever the machine has
    return every_case(rank, world_size, steps, lr, shards, "cuda", cases)


def test_nccl_with_one_agent_per_gpu(tmp_path: Path) -> None:
    """World size = the GPUs (at most 4); on a one-GPU machine, world size 1."""
    world_size, steps, lr = min(_gpus(), 4), 5, 0.1
    shards = make_data(world_size)
    cases = ALL_CASES if world_size == 4 else ANY_SIZE
    results = run_agents(every_case, world_size, tmp_path, steps, lr, shards, "cuda", cases, backend="nccl", on_gpu=True, timeout_s=280)
    _assert_matches_reference(results, cases, world_size, steps, lr, shards)
    for rank, agent in enumerate(results):
        for case, result in agent.items():
            assert result["backend"] == "nccl" and not result["staged"] and result["device"] == f"cuda:{rank}"
            # Stream-stall seconds from CUDA events: measured, finite, never negative.
            assert 0.0 <= result["comm_seconds"] < 60.0, f"{case}: comm seconds {result['comm_seconds']}"


def test_same_run_on_cpu_and_gpu_agrees(tmp_path: Path) -> None:
    common = ["agents=3", "algorithm=cga", *TINY, "train.epochs=1"]
    cpu = cgatrain(*common, "train.device=cpu", f"hydra.run.dir={tmp_path}/cpu", cwd=tmp_path)
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    gpu = cgatrain(*common, "train.device=cuda", f"hydra.run.dir={tmp_path}/gpu", cwd=tmp_path)
    assert gpu.returncode == 0, gpu.stderr[-3000:]
    for rank, (on_cpu, on_gpu) in enumerate(zip(final_params(tmp_path / "cpu", 1, 3), final_params(tmp_path / "gpu", 1, 3))):
        # float32 on both; the GPU sums in other orders (and CGA takes vmap cross-gradients there).
        torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-4, atol=1e-5, msg=f"agent {rank}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("model_kind", ["mlp", "cnn"])
def test_batched_cross_gradients_on_cuda_equal_the_loop(model_kind: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    device = torch.device("cuda", 0)
    if model_kind == "mlp":
        module, inputs = make_model(0, True), torch.randn(16, 4)
    else:
        module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
        inputs = torch.randn(16, 3, 32, 32)
    module = module.to(device=device, dtype=dtype)
    objective = LocalObjective(FlatModel(module), nn.CrossEntropyLoss(), weight_decay=0.05)
    objective.set_batch(inputs.to(device=device, dtype=dtype), torch.randint(0, 3, (16,), device=device))
    models = objective.flat_model.params + 0.1 * torch.randn(5, objective.flat_model.numel, dtype=dtype, device=device)
    auto = CrossGradients(objective, "auto")
    assert auto.batched, "auto must pick vmap on a GPU"
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-3, "atol": 1e-5}
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions would differ by ~1e-3 between the two
    try:
        batched, looped = auto.compute(models), CrossGradients(objective, "loop").compute(models)
    finally:
        torch.backends.cudnn.allow_tf32 = previous
    torch.testing.assert_close(batched, looped, **tolerance)
    assert batched.device == device and float(looped.abs().max()) > 0
    # Row 3 really is the gradient at model 3.
    objective.flat_model.params.copy_(models[3])
    objective.self_gradient()
    torch.testing.assert_close(looped[3], objective.flat_model.grad, **tolerance)


def test_staged_trajectory_on_one_gpu_in_this_process() -> None:
    """A single agent with no peers on CUDA: the wire stays out of the way (no process group needed for rounds)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        store = dist.HashStore()
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        result = trajectory_on(0, 1, "dpmsgd", {"momentum": 0.9}, RING, 3, 0.1, make_data(1), device_kind="cuda")
    finally:
        dist.destroy_process_group()
    assert result["staged"] and result["pinned"] and result["device"] == "cuda:0"
    torch.testing.assert_close(result["trajectory"], reference_for("dpmsgd", 1, 3, 0.1, make_data(1))[0], rtol=1e-8, atol=1e-10)


def test_resume_on_cuda_restores_the_gpu_generator(tmp_path: Path) -> None:
    """Dropout on a GPU draws from the device's generator: a resumed run must draw the masks an uninterrupted one draws.

    CGA on the authors' CNN (dropout 0.25) also takes its cross-gradients with vmap here, one dropout mask per model.
    """
    common = ["agents=3", "algorithm=cga", *[a for a in TINY if not a.startswith("model=")], "model=cnn_authors", "train.device=cuda"]
    full = cgatrain(*common, "train.epochs=2", f"hydra.run.dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    first = cgatrain(*common, "train.epochs=1", f"hydra.run.dir={tmp_path}/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = cgatrain(*common, "train.epochs=2", f"resume={tmp_path}/first", f"hydra.run.dir={tmp_path}/resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cuda_rng" in torch.load(tmp_path / "first" / "checkpoints" / "epoch_0001" / "agent_000.pt", weights_only=True)
    for rank, (uninterrupted, again) in enumerate(zip(final_params(tmp_path / "full", 2, 3), final_params(tmp_path / "resumed", 2, 3))):
        # Other dropout masks would move parameters by ~lr x gradient; GPU kernels may differ in the last bits only.
        torch.testing.assert_close(again, uninterrupted, rtol=1e-4, atol=1e-5, msg=f"agent {rank}")


def test_cuda_generator_state_round_trips() -> None:
    from cgatrain.train.rng import load_rng_state, rng_state

    device = torch.device("cuda", 0)
    saved = rng_state(device)
    first = (torch.rand(4, device=device), torch.rand(4))
    torch.rand(100, device=device)
    load_rng_state(saved, device)
    torch.testing.assert_close((torch.rand(4, device=device), torch.rand(4)), first, rtol=0, atol=0)


def test_a_training_step_on_cuda_never_waits_for_the_gpu() -> None:
    """Augmented batches, the gradient and loss, a random-k message and the step clock only queue GPU
    work: torch's sync debug mode raises on anything that would make the host wait for the GPU."""
    from types import SimpleNamespace

    from cgatrain.compression import build_compressor
    from cgatrain.data.agent_data import AgentData
    from cgatrain.data.datasets import load_dataset
    from cgatrain.train.step_clock import StepClock

    device = torch.device("cuda", 0)
    cfg = {"name": "fake", "image_shape": [3, 32, 32], "num_classes": 10, "train_size": 512, "test_size": 32, "augment": "crop_flip"}
    data = AgentData(load_dataset(cfg), torch.arange(256).numpy(), 32, 0, 0, device, cfg)
    model = FlatModel(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).to(device))
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    randomk = build_compressor({"name": "randomk", "fraction": 0.1})
    stream_timed = SimpleNamespace(wire=SimpleNamespace(stream_timed=True), device=device, total_seconds=lambda: 0.0)
    clock = StepClock(stream_timed)  # type: ignore[arg-type]

    def steps(epoch: int) -> torch.Tensor:
        window = torch.zeros((), dtype=torch.float64, device=device)
        for index, (inputs, targets) in enumerate(data.batches(epoch, 4)):
            clock.start()
            objective.set_batch(inputs, targets)
            window = window + objective.self_gradient().double()
            randomk.set_step(epoch * 4 + index)
            message = randomk.decompress(randomk.compress(model.params), model.numel, model.params.dtype)
            model.params.add_(model.grad, alpha=-0.01).add_(message, alpha=1e-3)
            clock.stop()
        return window

    steps(0)  # first use: allocations, cuBLAS handles, pinned host blocks
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        window = steps(1)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert float(window) > 0 and clock.seconds > 0


def test_per_tensor_qp_on_cuda_equals_the_cpu() -> None:
    """The per-tensor QP brings all slices' products over in one copy on CUDA; the directions match the CPU's."""
    from cgatrain.algorithms.qp import project_per_tensor

    generator = torch.Generator().manual_seed(7)
    g, G = torch.randn(60, generator=generator, dtype=torch.float64), torch.randn(3, 60, generator=generator, dtype=torch.float64)
    G[0] = -g
    boundaries = [0, 10, 35, 60]
    for margin in (0.0, 0.5):
        on_cpu = project_per_tensor(g, G, boundaries, margin)
        on_gpu = project_per_tensor(g.cuda(), G.cuda(), boundaries, margin)
        torch.testing.assert_close(on_gpu[0].cpu(), on_cpu[0], rtol=1e-10, atol=1e-12)
        assert on_gpu[1:] == on_cpu[1:]
