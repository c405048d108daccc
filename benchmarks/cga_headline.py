"""The CGA paper's headline setting on one GPU: 40 agents, VGG11, CIFAR-10-shaped data, ring, CGA.

The paper reports about 55 s per epoch on 40 V100s (one agent per GPU, batch 128, 50,000 training
images, so 10 steps per agent per epoch). This runs the same per-agent work with all 40 agents as
processes sharing one GPU (Gloo through pinned host staging buffers), times CGA and DPMSGD steps
with `step_time.py`, and prints seconds per epoch against the paper's 55 s and a 10 s goal.
Start CUDA MPS first to let the 40 processes' kernels run concurrently (docs/gpu.md); the JSON
records whether an MPS daemon was found.

    python benchmarks/cga_headline.py --json benchmarks/results/cga_headline_h200.json
    python benchmarks/cga_headline.py --device cpu --agents 3 --model cnn --steps 2   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
import step_time

PAPER_SECONDS_PER_EPOCH = 55.0
GOAL_SECONDS_PER_EPOCH = 10.0
CIFAR10_TRAIN = 50_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=40)
    parser.add_argument("--model", default="vgg11")
    parser.add_argument("--batch-size", type=int, default=128, help="the paper's mini-batch")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per algorithm (an epoch is 10)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cross-grad-mode", default="auto", help="CGA's cross_grad_mode (auto = vmap on GPUs)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    _harness.refuse_missing_gpus(args.device, args.gpus if args.device == "cuda" else None)
    result = step_time.main([
        "--agents", str(args.agents), "--model", args.model, "--data", "cifar10-shaped", "--batch-size", str(args.batch_size),
        "--algorithms", f"cga:cross_grad_mode={args.cross_grad_mode},momentum=0.98", "dpmsgd:momentum=0.98", "--baseline", "dpmsgd:momentum=0.98",
        "--topology", "ring", "--steps", str(args.steps), "--warmup", str(args.warmup), "--blocks", "2",
        "--epoch-samples", str(CIFAR10_TRAIN), "--device", args.device, "--gpus", str(args.gpus), "--timeout-s", "1800",
        *(["--json", args.json] if args.json else []),
    ])
    cga = result["rows"][0]
    print(f"\nCGA, {args.agents} agents on {args.gpus if args.device == 'cuda' else 0} GPU(s): {cga['seconds_per_epoch']:.1f} s/epoch "
          f"({cga['steps_per_epoch']} steps of {1e3 * cga['mean_step_s']:.0f} ms); the paper: {PAPER_SECONDS_PER_EPOCH:.0f} s/epoch on 40 V100s; "
          f"goal {GOAL_SECONDS_PER_EPOCH:.0f} s/epoch; CGA step = {cga['x_baseline']:.2f} x DPMSGD step")


if __name__ == "__main__":
    main()
