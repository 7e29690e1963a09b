"""Every released config builds, and its shapes are upstream's (without running a pass).

The reference data covers ResNet-50 and MobileNetV2 numerically; this covers the
structure of the others (ResNet-101, minimal/youtubevis variants): the weights of
trtnet.network.weight_spec fit the network the builder asks for, and the tensors the FPN, head
and ProtoNet produce have upstream's shapes for a 550x550 input.
"""

from __future__ import annotations

import pytest

from trtnet import emulator, names
from trtnet.network.random_weights import random_weights
from trtnet.config import CONFIGS, get_config
from trtnet.network.yolact_edge import build_keyframe

# Upstream's backbone output channels (C3, C4, C5) per backbone family.
BACKBONE_CHANNELS = {"resnet": (512, 1024, 2048), "mobilenetv2": (32, 64, 160)}
GRIDS = (69, 35, 18, 9, 5)  # P3..P7 for 550x550
PRIORS = sum(g * g for g in GRIDS) * 3  # 19248
BATCH = -1  # the batch dimension is dynamic (trtnet.build --max-batch sets its range)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_keyframe_network_of_every_config_has_upstream_shapes(name):
    config = get_config(name)
    net = emulator.Network()
    t = build_keyframe(net, emulator.trt, random_weights(name), config)
    channels = BACKBONE_CHANNELS[config.backbone.family]
    for label, c, g in zip(names.BACKBONE, channels, GRIDS):
        assert tuple(t[label].shape) == (BATCH, c, g, g), label
    for label, g in zip(names.FPN, GRIDS):
        assert tuple(t[label].shape) == (BATCH, 256, g, g), label
    assert tuple(t[names.PROTO].shape) == (BATCH, 138, 138, config.mask_dim)
    assert tuple(t[names.LOC].shape) == (BATCH, PRIORS, 4)
    assert tuple(t[names.CONF].shape) == (BATCH, PRIORS, config.num_classes)
    assert tuple(t[names.MASK].shape) == (BATCH, PRIORS, config.mask_dim)
    max_det = config.detect.max_det
    assert tuple(t[names.DET_BOXES].shape) == (BATCH, max_det, 4)
    assert tuple(t[names.DET_COEFFS].shape) == (BATCH, max_det, config.mask_dim)
