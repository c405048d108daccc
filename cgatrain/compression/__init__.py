"""Compression of flat tensors for the wire: codecs registered by name, and error feedback around them.

Importing this package registers every built-in codec.
"""

from cgatrain.compression import identity, sign  # noqa: F401  (registration)
from cgatrain.compression.base import COMPRESSORS, Compressor, build_compressor, register_compressor
from cgatrain.compression.error_feedback import ErrorFeedback
from cgatrain.compression.identity import IdentityCompressor
from cgatrain.compression.sign import SignCompressor, pack_bits, unpack_bits

__all__ = [
    "COMPRESSORS",
    "Compressor",
    "ErrorFeedback",
    "IdentityCompressor",
    "SignCompressor",
    "build_compressor",
    "pack_bits",
    "register_compressor",
    "unpack_bits",
]
