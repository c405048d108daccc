"""Compression of flat tensors for the wire: codecs registered by name, and error feedback around them.

Importing this package registers every built-in codec.
"""

from cgatrain.compression import identity, qsgd, randomk, sign, topk  # noqa: F401  (registration)
from cgatrain.compression.base import COMPRESSORS, Compressor, build_compressor, register_compressor
from cgatrain.compression.error_feedback import ErrorFeedback
from cgatrain.compression.identity import IdentityCompressor
from cgatrain.compression.qsgd import QSGDCompressor, pack_levels, unpack_levels
from cgatrain.compression.randomk import RandomKCompressor
from cgatrain.compression.sign import SignCompressor, pack_bits, unpack_bits
from cgatrain.compression.topk import TopKCompressor

__all__ = [
    "COMPRESSORS",
    "Compressor",
    "ErrorFeedback",
    "IdentityCompressor",
    "QSGDCompressor",
    "RandomKCompressor",
    "SignCompressor",
    "TopKCompressor",
    "build_compressor",
    "pack_bits",
    "pack_levels",
    "register_compressor",
    "unpack_bits",
    "unpack_levels",
]
