"""How a run appears in wandb: one run per experiment, the sweep as its group, the config as tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WANDB_TAG_LIMIT = 64  # characters wandb accepts in one tag


def name_the_run(cfg: dict[str, Any], run_dir: Path, sweep_group: str | None, overrides: list[str]) -> None:
    """Fill `logger.wandb` in place: the sweep folder as group, the overrides and main choices as tags, a name."""
    settings = cfg["logger"]["wandb"]
    if sweep_group and not settings.get("group"):
        settings["group"] = sweep_group
    chosen = [item.lstrip("+~") for item in overrides if not item.lstrip("+~").startswith(("hydra", "logger."))]
    main = [f"algorithm={cfg['algorithm']['name']}", f"data={cfg['data']['name']}", f"partition={cfg['partition']['name']}", f"agents={cfg['agents']}"]
    tags = list(settings.get("tags") or [])
    for tag in [*main, *chosen]:
        if tag[:WANDB_TAG_LIMIT] not in tags:
            tags.append(tag[:WANDB_TAG_LIMIT])
    settings["tags"] = tags
    if not settings.get("name"):
        what = " ".join(chosen) or cfg["algorithm"]["name"]
        settings["name"] = f"{run_dir.name}: {what}"[:128] if sweep_group else what[:128]
