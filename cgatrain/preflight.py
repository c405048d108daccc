"""Checks the parent makes before any agent starts, for faults that would otherwise surface in the agents."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cgatrain import checkpoint


def check_wandb(cfg: Mapping[str, Any]) -> None:
    """A wandb mode other than disabled needs the wandb package in this environment."""
    mode = cfg.get("logger", {}).get("wandb", {}).get("mode", "disabled")
    if mode == "disabled":
        return
    try:
        import wandb  # noqa: F401 (imported, not found: a broken install fails here too)
    except ImportError as error:
        raise ValueError(f"logger.wandb.mode={mode} needs the wandb package, which cannot be imported ({error}): pip install 'cgatrain[wandb]' or set logger.wandb.mode=disabled") from None


def damaged_agent_file(directory: Path, world_size: int) -> tuple[Path, str] | None:
    """The first agent file of a checkpoint folder that is missing, truncated or corrupt, with why."""
    for rank in range(world_size):
        path = checkpoint.agent_file(directory, rank)
        if not path.exists():
            return path, "missing"
        try:
            # torch.save writes a zip archive: a CRC check of every member finds truncation and bit rot
            # without unpickling anything.
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            return path, f"truncated or not a checkpoint: {error}"
        if bad is not None:
            return path, f"corrupt member {bad}"
    return None


def _complete_checkpoints(root: Path, world_size: int) -> list[Path]:
    """Checkpoint folders under checkpoints/ whose every agent file is intact, newest first."""
    folders = sorted((p for p in root.glob("epoch_*") if p.is_dir()), reverse=True)
    return [folder for folder in folders if damaged_agent_file(folder, world_size) is None]


def _offer(root: Path, world_size: int, skip: Path | None) -> str:
    earlier = [folder for folder in _complete_checkpoints(root, world_size) if folder != skip]
    if not earlier:
        return "no earlier complete checkpoint is left"
    return f"the previous complete checkpoint is {earlier[0]}: resume from it with resume={earlier[0]}"


def check_checkpoint(path: str | os.PathLike[str]) -> None:
    """Refuse a resume checkpoint that is unreadable, naming the file and offering an earlier one."""
    candidate = Path(path).expanduser()
    for root in (candidate / "checkpoints", candidate):
        latest = root / checkpoint.LATEST
        if latest.exists():
            try:
                info = json.loads(latest.read_text())
                directory, world_size = root / info["dir"], int(info["world_size"])
            except (ValueError, KeyError, TypeError, OSError) as error:
                world_size = len(list(next(iter(sorted(root.glob("epoch_*"))), root).glob("agent_*.pt")))
                raise ValueError(f"resume={path}: {latest} is unreadable ({error}); {_offer(root, world_size, None)}") from None
            break
    else:
        directory, _, world_size = checkpoint.resolve_resume(path)
        root = directory.parent
    if not directory.is_dir():
        raise ValueError(f"resume={path}: {latest} points at {directory}, which does not exist; {_offer(root, world_size, directory)}")
    damaged = damaged_agent_file(directory, world_size)
    if damaged is not None:
        raise ValueError(f"resume={path}: checkpoint file {damaged[0]} is {damaged[1]}; {_offer(root, world_size, directory)}")
