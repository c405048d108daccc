"""Start cgatrain with this folder's plugins: `python run.py --config-dir conf [overrides...]`.

The agents are separate processes: cgatrain imports the modules that registered names (here `plugins`)
again in each of them, so register in a module like `plugins.py`, not in this script.
"""

import plugins  # noqa: F401  (registers lazy_dpsgd, halfprec, mlp2, blobs, sorted)

from cgatrain.entry import main

if __name__ == "__main__":
    main()
