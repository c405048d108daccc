"""cdsgd, cdmsgd, fedavg and local averaging as a user runs them: config checks in the parent, and
FedAvg end to end with rounds that straddle epochs, resumed mid-round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_cli import TINY, cgatrain, final_params, summary
from test_config import composed

from cgatrain.config import ConfigError, validate

pytestmark = [pytest.mark.timeout(240)]


@pytest.mark.parametrize(
    "overrides",
    [["algorithm=cdsgd", "topology=complete"], ["algorithm=cdmsgd", "algorithm.nesterov=false"], ["algorithm=fedavg", "algorithm.client_fraction=0.4"],
     ["algorithm=fedavg", "algorithm.local_steps=7"], ["algorithm=local", "algorithm.average_every=2", "algorithm.average_with=gossip"]],
)
def test_new_algorithm_configs_are_valid(overrides: list[str]) -> None:
    validate(composed(*overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm=fedavg", "algorithm.client_fraction=0"], "algorithm.client_fraction must lie in (0, 1]"),
        (["algorithm=fedavg", "algorithm.client_fraction=1.5"], "algorithm.client_fraction must lie in (0, 1]"),
        (["algorithm=fedavg", "algorithm.client_fraction=-0.2"], "algorithm.client_fraction must lie in (0, 1]"),
        (["algorithm=fedavg", "algorithm.local_epochs=0"], "algorithm.local_epochs"),
        (["algorithm=fedavg", "algorithm.local_steps=0"], "algorithm.local_steps"),
        (["algorithm=fedavg", "+algorithm.momentum=0.9"], "no option(s) ['momentum']"),
        (["algorithm=cdmsgd", "algorithm.momentum=1.0"], "momentum"),
        (["algorithm=cdmsgd", "algorithm.nesterov=maybe"], "algorithm.nesterov"),
        (["algorithm=cdsgd", "topology=custom_example", "agents=4"], "doubly"),
        (["algorithm=local", "algorithm.average_every=0"], "algorithm.average_every"),
        (["algorithm=local", "algorithm.average_every=2", "algorithm.average_with=carrier_pigeon"], "algorithm.average_with"),
        # Gossip averaging must keep the mean: the custom example's weights are not doubly stochastic.
        (["algorithm=local", "algorithm.average_every=2", "algorithm.average_with=gossip", "topology=custom_example", "agents=4"], "doubly"),
    ],
)
def test_bad_values_are_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(composed(*overrides))
    assert message in str(error.value)


def test_local_without_gossip_needs_no_mixing_weights() -> None:
    validate(composed("algorithm=local", "topology=custom_example", "agents=4"))
    validate(composed("algorithm=local", "algorithm.average_every=3", "topology=custom_example", "agents=4"))


@pytest.mark.multiproc
def test_bad_client_fraction_fails_before_any_agent_starts(tmp_path: Path) -> None:
    result = cgatrain("algorithm=fedavg", "algorithm.client_fraction=0", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "algorithm.client_fraction must lie in (0, 1]" in result.stderr
    assert not (tmp_path / "run" / "agents.json").exists()


@pytest.mark.multiproc
def test_help_lists_the_new_algorithms(tmp_path: Path) -> None:
    result = cgatrain("--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    for name in ("cdsgd", "cdmsgd", "fedavg"):
        assert name in result.stdout


@pytest.mark.multiproc
def test_fedavg_rounds_straddle_epochs_and_resume_mid_round(tmp_path: Path) -> None:
    # 4 steps per epoch and rounds of 3 steps: epochs end mid-round (after steps 4 and 8).
    common = ["agents=3", "algorithm=fedavg", "algorithm.local_steps=3", "algorithm.client_fraction=0.67", *TINY, "train.eval_train=true"]
    full = cgatrain(*common, "train.epochs=3", f"hydra.run.dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "Topology: not used (fedavg: a server averages the chosen clients' models each round)" in full.stdout  # no graph banner
    first = cgatrain(*common, "train.epochs=2", f"hydra.run.dir={tmp_path}/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = cgatrain(*common, "train.epochs=3", f"resume={tmp_path}/first", f"hydra.run.dir={tmp_path}/resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for rank, (uninterrupted, continued) in enumerate(zip(final_params(tmp_path / "full", 3, 3), final_params(tmp_path / "resumed", 3, 3))):
        assert torch.equal(uninterrupted, continued), f"agent {rank} differs after a mid-round resume"
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    resumed_records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["fedavg_rounds"] for r in records] == [1, 2, 4]  # rounds end after steps 3, 6, 9 and 12
    assert resumed_records[-1]["consensus_test_accuracy"] == records[-1]["consensus_test_accuracy"]
    for record in records:
        # Every agent scores the global model, also mid-round: no disagreement to report.
        assert record["consensus_distance"] < 1e-9
        assert record["agent_test_accuracy_min"] == record["agent_test_accuracy_max"]
        assert 0.0 <= record["agent_train_accuracy_mean"] <= 1.0 and 0.0 <= record["consensus_train_accuracy"] <= 1.0
    result = summary(tmp_path / "full")
    # Two of three clients per round upload, every agent downloads: rank-mean upload is 2/3 of a model per round.
    model_mb = records[-1]["server_mb_sent"] / (3 * records[-1]["fedavg_rounds"])
    assert records[-1]["server_mb_received"] == pytest.approx(2 * 4 * model_mb)
    assert result["mb_sent_per_agent"] == pytest.approx(2 / 3 * 4 * model_mb)  # the mean over agents (schema 2)


def test_only_algorithms_that_talk_along_edges_claim_the_topology() -> None:
    from cgatrain.algorithms import get_algorithm

    assert get_algorithm("centralized").topology_role({}) == "gradients averaged by all-reduce every step"
    assert get_algorithm("local").topology_role({}) == "no communication at all"
    assert get_algorithm("local").topology_role({"average_every": 2}) == "models averaged by all-reduce every 2 steps"
    assert get_algorithm("local").topology_role({"average_every": 1, "average_with": "gossip"}) is None
    for name in ("cga", "dpsgd", "sgp", "ngo", "swarmsgd"):
        assert get_algorithm(name).topology_role({}) is None


def test_the_banner_shows_mixing_weights_only_where_the_update_reads_them() -> None:
    from cgatrain.algorithms import get_algorithm
    from cgatrain.topology import build_topology
    from cgatrain.train.banner import topology_line

    ring = build_topology({"graph": "ring", "weights": "uniform"}, 5)
    swarm = topology_line(get_algorithm("swarmsgd"), {"name": "swarmsgd"}, ring)
    assert "degree 2..2" in swarm and "weights=" not in swarm and "spectral gap" not in swarm
    assert swarm.endswith("mixing weights: not used (swarmsgd: matched pairs average 1/2-1/2)")
    for name in ("cga", "dpmsgd", "sgp", "ngo"):  # NGO reads W's off-diagonal entries
        assert topology_line(get_algorithm(name), {"name": name}, ring) == ring.describe()
    assert "weights=uniform" in ring.describe()
    assert topology_line(get_algorithm("local"), {"name": "local"}, ring) == "Topology: not used (local: no communication at all)"
