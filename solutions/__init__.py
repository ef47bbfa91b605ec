"""Reference solutions ("the truth") for the convolution problem sets.

* :mod:`convpset.solutions.loops` — plain-loop ground truth;
* :mod:`convpset.solutions.numpy_ref` — loop-free numpy forward/backward passes and conv matrices;
* :mod:`convpset.solutions.torch_ref` — the same API computed with torch (imports torch; not
  imported here because importing torch is slow);
* :mod:`convpset.solutions.network` — shapes / parameters / MACs / receptive fields of networks.
"""

from . import loops, network, numpy_ref
from ._params import (
    ConvGrads,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    pool_output_size,
    resolve_padding,
)
from .network import (
    LayerResult,
    NetworkResult,
    NetworkSpec,
    SpecError,
    analyze,
    analyze_torch,
    parse_spec,
    to_json,
)

__all__ = [
    "ConvGrads",
    "LayerResult",
    "NetworkResult",
    "NetworkSpec",
    "SpecError",
    "analyze",
    "analyze_torch",
    "conv_output_size",
    "conv_transpose_output_size",
    "loops",
    "network",
    "numpy_ref",
    "pair",
    "parse_spec",
    "pool_output_size",
    "resolve_padding",
    "to_json",
]
