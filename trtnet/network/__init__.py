"""YolactEdge as TensorRT network-definition code (runs on TensorRT or trtnet.emulator).

Entry points: :func:`build_keyframe` / :func:`build_nonkeyframe` add the image (keyframe)
or video (non-keyframe) network to an INetworkDefinition; :func:`emulate_keyframe` /
:func:`emulate_nonkeyframe` run them on the NumPy emulator; :func:`keyframe_state` turns a
keyframe pass's outputs into the non-keyframe network's state inputs.
"""

from trtnet.network.priors import make_priors
from trtnet.network.yolact_edge import (
    build_keyframe,
    build_nonkeyframe,
    emulate_keyframe,
    emulate_nonkeyframe,
    keyframe_state,
)

__all__ = ["build_keyframe", "build_nonkeyframe", "emulate_keyframe", "emulate_nonkeyframe",
           "keyframe_state", "make_priors"]
