"""The GPU benchmarks refuse `--device cuda` in the parent, with exit status 2, when no CUDA GPU is visible."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


@pytest.mark.parametrize(("script", "argv"), [
    ("exchange_throughput", ["--device", "cuda", "--agents", "3"]),
    ("step_time", ["--device", "cuda", "--agents", "3", "--steps", "1"]),
    ("cga_headline", ["--steps", "1"]),  # --device cuda is its default
])
def test_device_cuda_without_a_gpu_exits_2_before_spawning(script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(script)
    harness = importlib.import_module("_harness")

    def no_spawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("agents were spawned")

    monkeypatch.setattr(harness, "spawn_workers", no_spawn)
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2
    assert "--device cuda but no CUDA GPU is visible; use --device cpu" in capsys.readouterr().err
