"""cgatrain: decentralized deep learning with real peers over torch.distributed."""

__version__ = "0.1.0"
