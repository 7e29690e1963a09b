"""trtnet.network.weight_spec: expected keys/shapes per config, checked against real checkpoints."""

from __future__ import annotations

import json

import pytest

from trtnet.config import CONFIGS
from trtnet.network.weight_spec import compare, expected_shapes, match_config, recognise

REFERENCE = {"vid_resnet50": "yolact_edge_vid_resnet50", "mobilenetv2": "yolact_edge_mobilenetv2"}


def _index_shapes(reference_dir, case: str) -> dict:
    index = json.loads((reference_dir / case / "weights_index.json").read_text())
    # the index writes torch's 0-d num_batches_tracked as [1]
    return {k: () if k.endswith("num_batches_tracked") else tuple(v["shape"])
            for k, v in index.items()}


@pytest.mark.parametrize("case", REFERENCE)
def test_expected_shapes_equal_a_real_checkpoint(reference_dir, case):
    assert expected_shapes(REFERENCE[case]) == _index_shapes(reference_dir, case)


@pytest.mark.parametrize("case", REFERENCE)
def test_real_checkpoint_is_recognised(reference_dir, case):
    assert match_config(_index_shapes(reference_dir, case)) == (REFERENCE[case], [])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_is_told_apart_from_the_others(name):
    # configs sharing every key and shape (yolact_base / im400 / im700 / yolact_edge) are told
    # apart by the file name as upstream does (tests/test_convert_family.py covers the ties)
    found = recognise(expected_shapes(name), filename=f"{name}_54_800000.pth")
    assert (found.config, found.diffs) == (name, [])


@pytest.mark.parametrize("name, count", [
    ("yolact_edge", 660), ("yolact_edge_resnet50", 354), ("yolact_edge_mobilenetv2", 348),
    ("yolact_edge_vid", 697), ("yolact_edge_vid_minimal", 693), ("yolact_edge_youtubevis", 660),
])
def test_key_counts_follow_upstream_module_tree(name, count):
    # R101 = R50 + 17 more bottlenecks x 18 keys; video adds 33 flow keys, SPA 4
    assert len(expected_shapes(name)) == count


def test_class_count_difference_names_key_with_both_shapes():
    shapes = dict(expected_shapes("yolact_edge_youtubevis_resnet50"))
    diffs = compare(expected_shapes("yolact_edge_resnet50"), shapes)
    assert str(diffs[0]) == ("prediction_layers.0.conf_layer.weight: expected shape "
                             "(243, 256, 3, 3), found (123, 256, 3, 3)")


def test_partial_checkpoint_reports_closest_config_and_missing_keys():
    shapes = dict(expected_shapes("yolact_edge_mobilenetv2"))
    del shapes["proto_net.10.weight"]
    name, diffs = match_config(shapes)
    assert name == "yolact_edge_mobilenetv2"
    assert [str(d) for d in diffs] == ["proto_net.10.weight: missing (expected shape (32, 256, 1, 1))"]
