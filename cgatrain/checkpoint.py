"""Checkpoints: one file per agent per epoch, written atomically, read with weights_only=True.

Layout under a run directory::

    checkpoints/
        latest.json            {"epoch": E, "step": S, "dir": "epoch_000E", "world_size": N, "algorithm": NAME}, written last
        epoch_000E/agent_000.pt ... agent_{N-1}.pt
        epoch_000E_step_00000S/...   taken S steps into epoch E+1 (a stop or requeue request)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.json"


def epoch_dir(root: Path, epoch: int, step: int = 0) -> Path:
    """Folder for the checkpoints taken after `epoch` completed epochs (and `step` steps of the next)."""
    return root / (f"epoch_{epoch:04d}" if step == 0 else f"epoch_{epoch:04d}_step_{step:06d}")


def agent_file(directory: Path, rank: int) -> Path:
    return directory / f"agent_{rank:03d}.pt"


def save_agent(directory: Path, rank: int, state: dict[str, Any]) -> None:
    """Write one agent's state so that a crash never leaves a half-written file behind."""
    directory.mkdir(parents=True, exist_ok=True)
    target = agent_file(directory, rank)
    partial = target.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, target)


def load_agent(directory: Path, rank: int) -> dict[str, Any]:
    """Read one agent's state (tensors, numbers and strings only)."""
    path = agent_file(directory, rank)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint for agent {rank} at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def mark_latest(root: Path, epoch: int, world_size: int, keep: int, algorithm: str, step: int = 0) -> None:
    """Point latest.json at a complete checkpoint (after every agent saved) and prune older ones."""
    info = {"epoch": epoch, "step": step, "dir": epoch_dir(root, epoch, step).name, "world_size": world_size, "algorithm": algorithm}
    text = json.dumps(info)
    partial = root / (LATEST + ".partial")
    partial.write_text(text)
    os.replace(partial, root / LATEST)
    finished = sorted(p for p in root.glob("epoch_*") if p.is_dir())
    for old in finished[: max(len(finished) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def resolve_resume(path: str | os.PathLike[str]) -> tuple[Path, int, int]:
    """(epoch folder, completed epochs, world size) from a run dir, its checkpoints/ or an epoch folder."""
    candidate = Path(path).expanduser()
    for root in (candidate / "checkpoints", candidate):
        latest = root / LATEST
        if latest.exists():
            info = json.loads(latest.read_text())
            return root / info["dir"], int(info["epoch"]), int(info["world_size"])
    if candidate.name.startswith("epoch_") and candidate.is_dir():
        agents = sorted(candidate.glob("agent_*.pt"))
        return candidate, int(candidate.name.split("_")[1]), len(agents)
    raise FileNotFoundError(f"resume={path}: no checkpoints/{LATEST} or epoch_NNNN folder found there")


def resume_algorithm(path: str | os.PathLike[str]) -> str | None:
    """The algorithm a checkpoint was trained with, when its latest.json records it."""
    directory, _, _ = resolve_resume(path)
    latest = directory.parent / LATEST
    return json.loads(latest.read_text()).get("algorithm") if latest.exists() else None
