"""The console tables a run prints (per epoch and, at its end, per agent) stay aligned for numbers of any magnitude."""

from __future__ import annotations

import re

import pytest

from cgatrain.reporting import _cell, per_agent_table
from cgatrain.reporting.schema import AgentResult, RunSummary


def _right_edges(line: str) -> list[int]:
    """Where each cell ends: cells are separated by two spaces or more."""
    return [match.end() for match in re.finditer(r"\S+(?: \S+)*", line)]


def test_the_per_agent_table_stays_aligned_for_any_magnitude() -> None:
    agents = [AgentResult(rank=0, test_accuracy=0.1, test_loss=105842.8984, train_loss=105842.8984, mb_sent=12345678.9,
                          compute_seconds=123456.7, comm_seconds=12345.6),
              AgentResult(rank=1, test_accuracy=0.95, test_loss=0.1234, train_loss=0.2, mb_sent=1.0, compute_seconds=1.0, comm_seconds=0.5),
              AgentResult(rank=2, test_accuracy=None, test_loss=-1e300, train_loss=float("inf"), comm_seconds=-1e123)]
    lines = per_agent_table(RunSummary(status="completed", per_agent=agents)).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert all(_right_edges(line) == _right_edges(lines[0]) for line in lines)
    assert "1.0584e+05" in lines[1] and "0.1234" in lines[2]


def test_the_per_agent_table_keeps_its_layout_for_ordinary_numbers() -> None:
    agent = AgentResult(rank=0, test_accuracy=0.9, test_loss=0.3, train_loss=0.25, mb_sent=1.5, compute_seconds=2.0, comm_seconds=0.5)
    assert per_agent_table(RunSummary(status="completed", per_agent=[agent])).splitlines() == [
        "agent  test acc  test loss  train loss   MB sent  compute s  comm s",
        "    0    90.00%     0.3000      0.2500      1.50       2.00    0.50",
    ]


@pytest.mark.parametrize(("value", "width", "spec", "expected"), [
    (105842.8984, 10, ".4f", "1.0584e+05"),  # the epoch table's train loss column
    (2.5, 10, ".4f", "    2.5000"),
    (12345.6, 6, ".1f", " 1e+04"),
    (None, 6, ".1f", "     -"),
])
def test_an_epoch_table_cell_fits_its_width(value: float | None, width: int, spec: str, expected: str) -> None:
    assert _cell(value, width, spec) == expected
