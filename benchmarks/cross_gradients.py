"""Cross-gradient cost: `CrossGradients` batched (vmap over stacked models) versus loop, on one CPU thread.

A CGA agent computes, every step, the gradient of its own minibatch loss at each neighbour's model
(`CrossGradients.compute`). This benchmark times the two ways of doing that in one process with
`torch.set_num_threads(1)` (as one launched agent runs): `batched` (one `torch.func.vmap` over
`functional_call`) and `loop` (load each model into a scratch module and back-propagate). It does so
for several model / input shapes and degrees (number of neighbour models), alternating the two
modes so machine drift hits both alike, and checks that both give the same gradients. A plain
self-gradient (`LocalObjective.self_gradient`) is timed as the unit a cross-gradient is compared to.
The "auto" column is what `CrossGradients(..., "auto")` picks on CPU (`prefer_batched`).

    python benchmarks/cross_gradients.py --json benchmarks/results/cross_gradients.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so `_harness` imports when run as a script
import _harness

from cgatrain.algorithms.cross_grad import CrossGradients, prefer_batched
from cgatrain.algorithms.objective import FlatModel, LocalObjective
from cgatrain.models import build_model, loss_fn


@dataclass(frozen=True)
class Case:
    """One model on one input shape and batch size."""

    name: str
    model_cfg: dict[str, Any]
    input_shape: tuple[int, int, int]
    batch_size: int


CASES = {
    "cnn-digits": Case("cnn-digits", {"name": "cnn"}, (1, 8, 8), 32),
    "cnn-mnist": Case("cnn-mnist", {"name": "cnn"}, (1, 28, 28), 128),
    "mlp-digits": Case("mlp-digits", {"name": "mlp", "hidden": [128]}, (1, 8, 8), 32),
    "linear-digits": Case("linear-digits", {"name": "linear"}, (1, 8, 8), 32),
}
NUM_CLASSES = 10
PERTURBATION = 0.01  # neighbours' models sit near this agent's model, as after a few gossip rounds


def build_objective(case: Case, seed: int) -> LocalObjective:
    """The agent's model in a flat buffer plus its loss, on a fixed random minibatch of `case`'s shape."""
    torch.manual_seed(seed)
    module = build_model(case.model_cfg, case.input_shape, NUM_CLASSES)
    objective = LocalObjective(FlatModel(module), loss_fn("classification"), weight_decay=0.0)
    # Random pixels and labels: the cost of a gradient does not depend on the values.
    inputs = torch.randn(case.batch_size, *case.input_shape)
    targets = torch.randint(0, NUM_CLASSES, (case.batch_size,))
    objective.set_batch(inputs, targets)
    return objective


def neighbour_models(objective: LocalObjective, degree: int, seed: int) -> torch.Tensor:
    """(degree, d) perturbed copies of the agent's parameters, standing in for its neighbours' models."""
    generator = torch.Generator().manual_seed(seed + degree)
    params = objective.flat_model.params
    noise = torch.randn(degree, params.numel(), generator=generator, dtype=params.dtype)
    return params.detach().unsqueeze(0) + PERTURBATION * noise


def seconds(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def repeats_for(call_s: float, repeats: int, min_repeats: int, budget_s: float) -> int:
    """Timed rounds for a case whose two calls take `call_s` together: `repeats`, fewer if over budget."""
    # Slow cases (MNIST CNN at degree 8 takes seconds per call) would otherwise dominate the run time.
    affordable = int(budget_s / max(call_s, 1e-9))
    return max(min_repeats, min(repeats, affordable))


def bench_case(case: Case, degree: int, args: argparse.Namespace) -> dict[str, Any]:
    """Time batched and loop cross-gradients (alternating) and one self-gradient; compare the results."""
    objective = build_objective(case, args.seed)
    models = neighbour_models(objective, degree, args.seed)
    modes = {"batched": CrossGradients(objective, "batched"), "loop": CrossGradients(objective, "loop")}

    # Warm-up: vmap tracing, the loop's scratch module, oneDNN primitive caches; also the results to compare.
    outputs = {name: cross.compute(models).clone() for name, cross in modes.items()}
    for _ in range(args.warmup - 1):
        for cross in modes.values():
            cross.compute(models)
    for _ in range(args.warmup):
        objective.self_gradient()

    # One probe round sizes the number of repeats to the per-case time budget.
    probe = {name: seconds(lambda c=cross: c.compute(models)) for name, cross in modes.items()}
    rounds = repeats_for(sum(probe.values()), args.repeats, args.min_repeats, args.budget_s)
    times: dict[str, list[float]] = {name: [value] for name, value in probe.items()}
    order = list(modes)
    for round_index in range(rounds - 1):
        # Alternate which mode goes first, so neither always runs on a warmer (or cooler) cache.
        for name in order if round_index % 2 else order[::-1]:
            times[name].append(seconds(lambda c=modes[name]: c.compute(models)))
    self_times = [seconds(objective.self_gradient) for _ in range(max(args.repeats, 5))]

    difference = (outputs["batched"] - outputs["loop"]).abs().max().item()
    scale = outputs["loop"].abs().max().item()
    batched_s, loop_s, self_s = (_harness.median(times["batched"]), _harness.median(times["loop"]),
                                 _harness.median(self_times))
    return {
        "model": case.name,
        "model_cfg": case.model_cfg,
        "input_shape": list(case.input_shape),
        "batch_size": case.batch_size,
        "params": objective.flat_model.numel,
        "degree": degree,
        "repeats": len(times["batched"]),
        "batched_s": batched_s,
        "loop_s": loop_s,
        "self_gradient_s": self_s,
        "speedup_batched_over_loop": loop_s / batched_s,
        "batched_in_self_gradients": batched_s / self_s,
        "loop_in_self_gradients": loop_s / self_s,
        "max_abs_diff": difference,
        "max_abs_gradient": scale,
        "auto_picks": "batched" if prefer_batched(objective.flat_model.module, torch.device("cpu")) else "loop",
        "batched_times_s": times["batched"],
        "loop_times_s": times["loop"],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """The readable summary; "xself" columns are times in units of one plain self-gradient."""
    headers = ["model", "params", "degree", "reps", "self-grad ms", "batched ms", "loop ms", "batched xself",
               "loop xself", "speed-up (loop/batched)", "auto", "max abs diff"]
    table = [
        [r["model"], f"{r['params']:,}", r["degree"], r["repeats"], 1e3 * r["self_gradient_s"], 1e3 * r["batched_s"],
         1e3 * r["loop_s"], r["batched_in_self_gradients"], r["loop_in_self_gradients"],
         r["speedup_batched_over_loop"], r["auto_picks"], f"{r['max_abs_diff']:.1e}"]
        for r in rows
    ]
    print(_harness.format_table(headers, table))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES),
                        help="model / input-shape cases to run")
    parser.add_argument("--degrees", nargs="+", type=int, default=[2, 4, 8], help="neighbour models per call")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per mode (fewer for slow cases)")
    parser.add_argument("--min-repeats", type=int, default=3, help="timed calls per mode however slow the case")
    parser.add_argument("--budget-s", type=float, default=6.0,
                        help="rough timed seconds per case; caps the repeats of slow cases")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per mode before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    if min(args.degrees) < 1 or args.warmup < 1 or args.min_repeats < 1 or args.repeats < args.min_repeats:
        parser.error("degrees and --warmup must be >= 1, and --repeats >= --min-repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every case and degree, print the table, optionally save JSON."""
    args = parse_args(argv)
    torch.set_num_threads(1)  # one agent's share of the machine, as the launcher sets it
    started = time.perf_counter()
    rows = []
    for name in args.models:
        for degree in args.degrees:
            rows.append(bench_case(CASES[name], degree, args))
            print(f"  {name} degree {degree}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"cross-gradients on CPU, 1 thread, torch {torch.__version__}; median of 'reps' calls per mode")
    print_table(rows)
    options = {key: value for key, value in vars(args).items() if key != "json"}
    machine = {**_harness.machine_info(), "backend": "none (single process)"}
    _harness.write_json(args.json, {"benchmark": "cross_gradients", "options": options, "machine": machine,
                                    "run_time_s": time.perf_counter() - started, "rows": rows})


if __name__ == "__main__":
    main()
