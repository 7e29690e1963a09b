"""YolactEdge as TensorRT network-definition code (runs on TensorRT or trtnet.emulator).

Entry points: :func:`build_keyframe` / :func:`build_nonkeyframe` add the image (keyframe)
or video (non-keyframe) network to an INetworkDefinition; :func:`emulate_keyframe` /
:func:`emulate_nonkeyframe` run them on the NumPy emulator; :func:`keyframe_state` turns a
keyframe pass's outputs into the non-keyframe network's state inputs.

Room rule: layer helpers (:mod:`.layers`), the backbones (:mod:`.backbones`, one module per
family), FPN, ProtoNet, head, flow, detect, priors; the checkpoint as the network reads it
(:mod:`.weights`, :mod:`.weight_spec`: which config a checkpoint fits). It may import
trtnet.config, trtnet.names, precision's plan vocabulary (trtnet.precision.plans), plugins and
the emulator; never precision's calibration/audit, builder, runtime or a command.
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
