"""Start cgatrain with this folder's plugins: `python run.py --config-dir conf [overrides...]`.

Agents are separate processes that import this script again, so the plugins are registered in
every agent as in the parent; keep the import at module level (not under `if __name__ == ...`).
"""

import plugins  # noqa: F401  (registers lazy_dpsgd, halfprec, mlp2, blobs, sorted)

from cgatrain.entry import main

if __name__ == "__main__":
    main()
