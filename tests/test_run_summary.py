"""summary.json's derived figures (cgatrain/train/summary.py): per step, per epoch, compression, each agent."""

from __future__ import annotations

from pathlib import Path

import torch

from cgatrain.reporting.schema import EpochRecord
from cgatrain.train.summary import AGENT_COLUMNS, run_summary


def test_derived_figures_of_a_resumed_compressing_run(tmp_path: Path) -> None:
    # Two agents: train loss, test loss, test acc, bytes sent, dense bytes, compute s, comm s (AGENT_COLUMNS).
    table = torch.tensor([[0.5, 0.7, 0.9, 1000.0, 5000.0, 3.0, 1.0],
                          [0.3, 0.6, float("nan"), 3000.0, 15000.0, 4.0, 2.0]], dtype=torch.float64)
    assert table.shape[1] == len(AGENT_COLUMNS)
    history = [EpochRecord(epoch=e, lr=0.1, train_loss=1.0 / e, consensus_test_accuracy=0.5 + e / 10).to_dict() for e in (1, 2, 3)]
    summary = run_summary("completed", "sparse_push", 2, history, 1, 10, table, {"push_compressed": 1000}, 12.0, tmp_path)
    assert summary.epochs_completed == 3 and summary.consensus_test_accuracy == 0.8 and summary.final_train_loss == 1 / 3
    assert summary.bytes_sent_per_step == 2000.0 / 30  # the mean agent's bytes over 3 epochs of 10 steps
    assert summary.compression_factor == 5.0  # dense over sent bytes, all agents together
    assert summary.seconds_per_epoch == 6.0  # epoch 1 was trained by the run this one resumed
    assert summary.bytes_sent_by_round == {"push_compressed": 1000} and summary.run_dir == str(tmp_path)
    first, second = summary.per_agent
    assert (first.rank, first.mb_sent, first.test_accuracy, first.compute_seconds) == (0, 0.001, 0.9, 3.0)
    assert second.test_accuracy is None and second.comm_seconds == 2.0  # a regression run has no accuracy


def test_a_run_that_ended_before_its_first_epoch(tmp_path: Path) -> None:
    summary = run_summary("interrupted", "cga", 3, [], 4, 10, None, {}, 1.5, tmp_path)
    assert summary.epochs_completed == 4 and summary.final_train_loss is None
    assert summary.per_agent == [] and summary.compression_factor is None and summary.bytes_sent_per_step is None


def test_an_algorithm_that_never_compresses_has_factor_one(tmp_path: Path) -> None:
    table = torch.tensor([[0.5, 0.7, 0.9, 1000.0, 0.0, 3.0, 1.0]], dtype=torch.float64)  # dense_bytes_sent never counted
    history = [EpochRecord(epoch=1, lr=0.1, train_loss=1.0).to_dict()]
    assert run_summary("completed", "dpsgd", 1, history, 0, 10, table, {"model": 1000}, 1.0, tmp_path).compression_factor == 1.0


def test_a_run_that_diverged_in_its_first_epoch_reports_what_it_sent(tmp_path: Path) -> None:
    nan = float("nan")
    table = torch.tensor([[nan, nan, nan, 7000.0, 0.0, 1.0, 0.5], [nan, nan, nan, 9000.0, 0.0, 1.0, 0.5]], dtype=torch.float64)
    summary = run_summary("diverged", "dpsgd", 2, [], 0, 50, table, {"model": 7000}, 2.0, tmp_path, steps_done=10)
    assert summary.mb_sent_per_agent == 0.008 and summary.mb_sent_per_agent_min == 0.007 and summary.mb_sent_per_agent_max == 0.009
    assert summary.bytes_sent_per_step == 800.0 and summary.epochs_completed == 0  # over the 10 steps it took, not an epoch


def test_the_compressor_label_names_the_resolved_compressor_and_its_options() -> None:
    from cgatrain.algorithms import get_algorithm, resolve_compressor
    from cgatrain.train.banner import compressor_label

    assert compressor_label(resolve_compressor({"name": "auto"}, get_algorithm("compcga"))) == "sign"
    assert compressor_label({"name": "topk", "fraction": 0.01}) == "topk (fraction=0.01)"
    assert compressor_label({"name": "qsgd", "bits": 4, "seed": None}) == "qsgd (bits=4)"
