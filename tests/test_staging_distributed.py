"""The staged wire (agents sharing a GPU talk over Gloo through host buffers), forced on CPU.

`comm.staging=always` sends every round through separate staging buffers: copy in, send, receive,
copy out. These tests run it in real Gloo processes and require results identical, bit for bit,
to the direct wire, so the code path that shared GPUs take is checked on every CI run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from device_agents import CASES, every_case_both_ways, reference_for
from multiproc import run_agents
from test_algorithms_distributed import make_data
from test_cli import TINY, cgatrain, final_params, summary

from cgatrain.algorithms import get_algorithm
from cgatrain.comm import NeighborExchange

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(240)]


def test_every_algorithm_is_identical_staged_and_direct(tmp_path: Path) -> None:
    world_size, steps, lr = 4, 5, 0.1
    shards = make_data(world_size)
    results = run_agents(every_case_both_ways, world_size, tmp_path, steps, lr, shards, "cpu", timeout_s=200)
    for case, name, *_ in CASES:
        for rank, agent in enumerate(results):
            direct, staged = agent[f"{case}/auto"], agent[f"{case}/always"]
            assert not direct["staged"] and staged["staged"]
            assert torch.equal(staged["trajectory"], direct["trajectory"]), f"{case}: agent {rank} differs when staged"
            assert staged["bytes"] == direct["bytes"], f"{case}: the staged wire counted other bytes"
            moved = sum(direct["bytes"].values())
            assert (staged["staged_bytes"] > 0) == (moved > 0) and direct["staged_bytes"] == 0
        posted = {round_name for agent in results for round_name in agent[f"{case}/auto"]["bytes"]}
        undeclared = {r for r in posted if r != "buffers" and not r.startswith("_")} - set(get_algorithm(name).rounds)
        assert not undeclared, f"{case}: rounds {sorted(undeclared)} posted but not in {name}'s `rounds`"
        if name != "local":
            assert float((results[0][f"{case}/auto"]["trajectory"][-1] - results[0][f"{case}/auto"]["trajectory"][0]).abs().max()) > 1e-3
    # And the staged run is the algorithm itself (this also checks the references the GPU tests use).
    for case, *_ in CASES:
        expected = reference_for(case, world_size, steps, lr, shards)
        for rank, agent in enumerate(results):
            torch.testing.assert_close(agent[f"{case}/always"]["trajectory"], expected[rank], rtol=1e-6, atol=1e-7, msg=f"{case}: agent {rank}")


def _staged_round_order(rank: int, world_size: int) -> dict:
    """Post a staged round with a two-tensor payload, then check what is visible before and after wait()."""
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"), staging="always")
    peers = sorted({(rank - 1) % world_size, (rank + 1) % world_size})
    model = torch.full((1000,), float(rank))
    bits = torch.arange(5, dtype=torch.uint8) + rank
    targets = {peer: [torch.full((1000,), -1.0), torch.zeros(5, dtype=torch.uint8)] for peer in peers}
    pending = exchange.post("round", {peer: [model, bits] for peer in peers}, targets)
    model.fill_(99.0)  # the staged copy left at post time; changing the source now must not matter
    untouched = all(bool((targets[peer][0] == -1.0).all()) for peer in peers)  # copied out only in wait()
    pending.wait()
    delivered = all(
        torch.equal(targets[peer][0], torch.full((1000,), float(peer))) and torch.equal(targets[peer][1], torch.arange(5, dtype=torch.uint8) + peer)
        for peer in peers
    )
    buffers_after_one_round = exchange.wire.pool.allocated
    for _ in range(4):
        exchange.exchange("round", {peer: [model, bits] for peer in peers}, targets)
    averaged = torch.full((7,), float(rank))
    exchange.all_reduce_mean("reduce", averaged)
    return {
        "untouched_before_wait": untouched,
        "delivered": delivered,
        "buffers": (buffers_after_one_round, exchange.wire.pool.allocated),
        "resent": all(bool((targets[peer][0] == 99.0).all()) for peer in peers),
        "average": averaged,
        "calls": exchange.stats["round"].calls,
    }


def test_staged_round_copies_in_at_post_and_out_at_wait_reusing_buffers(tmp_path: Path) -> None:
    world_size = 3
    results = run_agents(_staged_round_order, world_size, tmp_path)
    for rank, result in enumerate(results):
        assert result["untouched_before_wait"], f"agent {rank}: a receive target changed before wait()"
        assert result["delivered"] and result["resent"], f"agent {rank}: wrong data after wait()"
        # 2 send tensors copied once for both peers + 2 peers x 2 receive tensors = 6 buffers,
        # leased again in every later round; the all-reduce adds one.
        assert result["buffers"] == (6, 6 + 1), f"agent {rank}: staging buffers were not reused {result['buffers']}"
        assert result["calls"] == 5
        torch.testing.assert_close(result["average"], torch.full((7,), (world_size - 1) / 2))


def test_cli_run_with_forced_staging_equals_the_direct_run(tmp_path: Path) -> None:
    common = ["agents=3", "algorithm=cga", *TINY, "train.epochs=1", "train.device=cpu"]
    direct = cgatrain(*common, f"hydra.run.dir={tmp_path}/direct", cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    staged = cgatrain(*common, "comm.staging=always", f"hydra.run.dir={tmp_path}/staged", cwd=tmp_path)
    assert staged.returncode == 0, staged.stderr
    for rank, (a, b) in enumerate(zip(final_params(tmp_path / "direct", 1, 3), final_params(tmp_path / "staged", 1, 3))):
        assert torch.equal(a, b), f"agent {rank} differs when staged"
    assert summary(tmp_path / "staged")["mb_sent_per_agent"] == summary(tmp_path / "direct")["mb_sent_per_agent"] > 0
