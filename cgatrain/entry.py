"""The `cgatrain` command's first frame: Ctrl-C while torch and Hydra are still importing ends quietly."""

from __future__ import annotations

import sys

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def main() -> None:
    """Import the CLI (torch, Hydra: seconds on a busy machine) and run it; Ctrl-C meanwhile exits 130."""
    try:
        from cgatrain.cli import main as cli_main
    except KeyboardInterrupt:
        print("interrupted before the run started", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    cli_main()


if __name__ == "__main__":
    main()
