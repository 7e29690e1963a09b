"""YolactEdge as TensorRT network-definition code (runs on TensorRT or trtnet.emulator).

Entry points: :func:`build_keyframe` (add the image/keyframe network to an
INetworkDefinition) and :func:`emulate_keyframe` (run it on the NumPy emulator).
"""

from trtnet.network.priors import make_priors
from trtnet.network.yolact_edge import build_keyframe, emulate_keyframe

__all__ = ["build_keyframe", "emulate_keyframe", "make_priors"]
