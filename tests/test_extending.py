"""docs/extending.md's example plugins (docs/examples/extending/): each kind works, and a user's run of them does."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from cgatrain.algorithms import ALGORITHMS, AgentContext, FlatModel, LocalObjective, get_algorithm, resolve_compressor
from cgatrain.compose import compose_config
from cgatrain.compression import COMPRESSORS, build_compressor
from cgatrain.config import validate
from cgatrain.data.datasets import DATASETS, load_dataset
from cgatrain.data.partition import PARTITIONS, partition_indices
from cgatrain.models import MODELS, build_model
from cgatrain.registry import origin
from cgatrain.reporting.schema import load_summary
from cgatrain.topology import TopologyError, build_topology

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "extending"
CONF = EXAMPLE / "conf"
REGISTRIES = {"algorithm": ALGORITHMS, "compressor": COMPRESSORS, "model": MODELS, "data": DATASETS, "partition": PARTITIONS}


def conf(group: str, name: str) -> dict[str, Any]:
    """One of the example's config files, as the dict Hydra would compose from it."""
    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def plugins() -> Iterator[ModuleType]:
    """The example's plugins.py, imported as run.py imports it; its names are unregistered afterwards."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("plugins")
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("plugins", None)
        for group, registry in REGISTRIES.items():
            for path in (CONF / group).glob("*.yaml"):
                registry.remove(conf(group, path.stem)["name"])


def test_every_example_config_names_a_registered_plugin(plugins: ModuleType) -> None:
    for group, registry in REGISTRIES.items():
        files = sorted((CONF / group).glob("*.yaml"))
        assert files, f"no example for {group}"
        for path in files:
            name = conf(group, path.stem)["name"]
            assert name == path.stem and name in registry, f"{path} names {name!r}"
            assert origin(registry.get(name)).startswith("plugins."), origin(registry.get(name))


def test_halfprec_compressor_halves_the_bytes_and_refuses_unknown_precisions(plugins: ModuleType) -> None:
    codec = build_compressor(conf("compressor", "halfprec"))
    flat = torch.linspace(-3, 3, 101)
    assert codec.payload_nbytes(101, torch.float32) == 202
    torch.testing.assert_close(codec.compress_decompress(flat), flat, rtol=1e-3, atol=1e-3)
    assert [t.dtype for t in codec.payload_like(101, torch.float32, torch.device("cpu"))] == [torch.float16]
    assert build_compressor({"name": "halfprec", "precision": "bfloat16"}).compress(flat)[0].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="compressor.precision must be one of"):
        build_compressor({"name": "halfprec", "precision": "int8"})
    with pytest.raises(ValueError, match=r"no option\(s\) \['bits'\]"):
        build_compressor({"name": "halfprec", "bits": 4})


def test_lazy_dpsgd_options_are_checked_before_start(plugins: ModuleType) -> None:
    cls = get_algorithm("lazy_dpsgd")
    cls.check_hyperparameters(conf("algorithm", "lazy_dpsgd"))
    with pytest.raises(ValueError, match=r"has no option\(s\) \['decay'\]"):
        cls.check_hyperparameters({"name": "lazy_dpsgd", "decay": 0.1})
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="algorithm.damping must be a number in"):
            cls.check_hyperparameters({"damping": bad})
    with pytest.raises(ValueError, match="algorithm.momentum must be a number in"):
        cls.check_hyperparameters({"momentum": 1.0})
    assert resolve_compressor({"name": "auto"}, cls) == {"name": "halfprec"}


class LoopbackExchange:
    """A wire with one peer whose payloads are fixed: enough to check one agent's update in-process."""

    def __init__(self, peer_payload: list[torch.Tensor]) -> None:
        self.peer_payload = peer_payload
        self.posted: list[str] = []

    def post(self, name: str, sends: dict, recvs: dict) -> Any:
        self.posted.append(name)
        for buffers in recvs.values():
            for buffer, part in zip(buffers, self.peer_payload):
                buffer.copy_(part)
        return self

    def wait(self) -> None:
        pass


@pytest.mark.parametrize("damping, momentum", [(0.5, 0.0), (1.0, 0.0), (0.3, 0.9)])
def test_lazy_dpsgd_step_is_the_update_in_its_docstring(plugins: ModuleType, damping: float, momentum: float) -> None:
    torch.manual_seed(0)
    model = FlatModel(nn.Linear(4, 3))
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(torch.randn(8, 4), torch.randint(3, (8,)))
    codec = build_compressor({"name": "halfprec"})
    neighbour = torch.randn_like(model.params)
    exchange = LoopbackExchange(codec.compress(neighbour))
    topology = build_topology({"graph": "complete", "weights": "uniform"}, 2)
    context = AgentContext(0, 2, model, objective, topology, exchange, {"name": "halfprec"})  # type: ignore[arg-type]
    algorithm = get_algorithm("lazy_dpsgd")(context, {"damping": damping, "momentum": momentum})
    algorithm.setup()
    assert algorithm.momentum is not None and algorithm.momentum.beta == momentum
    velocity = torch.zeros_like(model.params)
    W = topology.mixing_matrix(0, 0)
    lr = 0.1
    for step in range(3):
        before = model.params.clone()
        loss = algorithm.step(lr, step, 0)
        mixed = W[0, 0] * before + W[0, 1] * codec.compress_decompress(neighbour)
        velocity = momentum * velocity - lr * model.grad
        expected = (1 - damping) * before + damping * mixed + velocity
        torch.testing.assert_close(model.params, expected.float(), rtol=1e-5, atol=1e-6)
        assert loss > 0
    assert exchange.posted == ["model"] * 3 and set(exchange.posted) <= set(algorithm.rounds)
    # the dense size of the model sent to the one out-neighbour, 3 times; the wire carried half of it
    assert algorithm.dense_bytes_sent == 3 * model.params.numel() * 4
    state = algorithm.state_dict()
    assert "_mixed" not in state and "dense_bytes_sent" in state and ("velocity" in state) == (momentum > 0)


def test_mlp2_blobs_and_sorted_partition_fit_together(plugins: ModuleType) -> None:
    split = load_dataset(conf("data", "blobs"))
    assert split.task == "classification" and split.input_shape == (8,) and split.num_classes == 3
    assert len(split.train_x) == 480 and len(split.test_x) == 120 and split.train_y.dtype == torch.int64
    model = build_model(conf("model", "mlp2"), split.input_shape, split.num_classes)
    assert model(split.train_x[:5]).shape == (5, 3)
    with pytest.raises(ValueError, match="model.activation must be one of"):
        build_model({"name": "mlp2", "activation": "gelu"}, (8,), 3)
    labels = split.train_y.numpy()
    shards = partition_indices(labels, 4, conf("partition", "sorted"), seed=0)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(labels)))
    assert [len(s) for s in shards] == [120] * 4
    # sorted by label: every agent's labels lie above the previous agent's
    assert all(labels[a].max() <= labels[b].min() for a, b in zip(shards, shards[1:]))


def test_line4_topology_is_a_path_and_only_for_four_agents(plugins: ModuleType) -> None:
    topology = build_topology(conf("topology", "line4"), 4)
    assert [topology.in_neighbors(rank, 0, 0) for rank in range(4)] == [[1], [0, 2], [1, 3], [2]]
    topology.validate("doubly")
    with pytest.raises(TopologyError, match="agents=2"):
        build_topology(conf("topology", "line4"), 2)


def test_the_preset_composes_with_the_config_dir_and_passes_the_parents_checks(plugins: ModuleType) -> None:
    cfg = compose_config([f"hydra.searchpath=[file://{CONF}]", "experiment=blobs_line"])
    assert (cfg.algorithm.name, cfg.compressor.name, cfg.model.name, cfg.data.name, cfg.partition.name) == ("lazy_dpsgd", "auto", "mlp2", "blobs", "sorted")
    assert cfg.agents == 4 and cfg.topology.graph == "custom"
    assert "custom" in validate(cfg)  # the DictConfig itself, as docs/extending.md shows


@pytest.mark.multiproc
@pytest.mark.timeout(180)
def test_a_user_runs_the_example_with_run_py_and_config_dir(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLE / "run.py"), "--config-dir", str(CONF), "experiment=blobs_line",
               "train.epochs=1", "train.steps_per_epoch=2", "train.progress_bar=false", "comm.timeout_s=60"]
    run = subprocess.run([*command, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr
    summary = load_summary(tmp_path / "run")
    assert summary.status == "completed" and summary.epochs_completed == 1
    assert set(summary.bytes_sent_by_round) == {"model"}
    assert summary.compression_factor == pytest.approx(2.0)  # halfprec: 2 bytes on the wire per 4-byte float
    assert summary.compressor == "halfprec" and "lazy_dpsgd with compressor halfprec |" in run.stdout  # the preset chose it

    refused = subprocess.run([*command, "+algorithm.decay=0.1", f"hydra.run.dir={tmp_path}/refused"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "algorithm 'lazy_dpsgd' has no option(s) ['decay']" in refused.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.multiproc
@pytest.mark.timeout(180)
def test_a_stopped_run_of_the_users_script_says_to_resume_it_with_that_script(tmp_path: Path) -> None:
    """`cgatrain resume=RUN` would not know the script's plugins: the hint, and summary.json, name `python run.py`."""
    script, run_dir = EXAMPLE / "run.py", tmp_path / "run"
    command = [sys.executable, str(script), "--config-dir", str(CONF), "experiment=blobs_line", "train.epochs=100000",
               "train.steps_per_epoch=2", "train.progress_bar=false", "comm.timeout_s=60", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "latest.json").exists():
            assert time.monotonic() < deadline and process.poll() is None, "the run never got going"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stderr[-2000:]
    expected = f"continue with: python {script} resume={run_dir}"
    assert expected in stderr and load_summary(run_dir).extra["resume"].endswith(expected), stderr[-2000:]


@pytest.mark.multiproc
@pytest.mark.timeout(240)
def test_plugins_reach_submitit_jobs_and_their_agents(tmp_path: Path) -> None:
    """Submitit jobs unpickle cgatrain's task, not the user's script: the plugin modules travel with it."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(EXAMPLE / "run.py"), "--config-dir", str(CONF), "-m", "hydra/launcher=submitit_local",
               "experiment=blobs_line", "seed=0,1", "train.epochs=1", "train.steps_per_epoch=2", "train.progress_bar=false",
               "comm.timeout_s=60", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=220)  # not the example's folder
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"sweep of 2 jobs in {sweep}: 2 completed" in result.stdout
    assert load_summary(sweep / "1").algorithm == "lazy_dpsgd"


def test_plugin_modules_are_found_by_where_they_are_defined(plugins: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.registry import import_plugins, plugin_modules

    assert plugin_modules() == [("plugins", str(EXAMPLE / "plugins.py"))]  # cgatrain's own modules are not plugins
    package = tmp_path / "mylab" / "extras"
    package.mkdir(parents=True)
    (tmp_path / "mylab" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("MARK = 1\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    import_plugins([("mylab.extras", str(package / "__init__.py"))])  # its root folder joins the path
    assert sys.modules["mylab.extras"].MARK == 1 and str(tmp_path) in sys.path
    for name in ("mylab.extras", "mylab"):
        sys.modules.pop(name)
    # What registers counts, not where the object was defined (a partial of functools, a class of torchvision).
    (tmp_path / "partialplug.py").write_text("import functools\nfrom cgatrain.models import register_model\n"
                                              "from cgatrain.models.builders import _mlp\n"
                                              "register_model('partial_mlp')(functools.partial(_mlp))\n")
    try:
        import_plugins([("partialplug", str(tmp_path / "partialplug.py"))])
        assert ("partialplug", str(tmp_path / "partialplug.py")) in plugin_modules()
        assert not any(module.startswith(("functools", "importlib")) for module, _ in plugin_modules())
    finally:
        MODELS.remove("partial_mlp")
        sys.modules.pop("partialplug", None)
