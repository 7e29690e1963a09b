"""The harness gives the REAL TensorRT bindings (11.4 and 10.3) to tests."""

from __future__ import annotations

import sys

import trt_harness


def test_both_versions_are_the_real_bindings(trt_modules):
    assert trt_modules["11.4"].__version__.startswith("11.4")
    assert trt_modules["10.3"].__version__.startswith("10.3")
    # Two distinct extension modules, not one module imported twice.
    assert trt_modules["11.4"].INetworkDefinition is not trt_modules["10.3"].INetworkDefinition


def test_trt_fixture_aliases_tensorrt(trt):
    import tensorrt

    assert tensorrt is trt
    assert sys.modules["tensorrt"] is trt


def test_add_convolution_nd_signature_is_read_from_the_bindings(trt):
    params = trt_harness.signature(trt.INetworkDefinition.add_convolution_nd)
    assert params == [["self", "input", "num_output_maps", "kernel_shape", "kernel", "bias"]]


def test_only_the_builder_needs_the_runtime_library(trt):
    # The stubs return NULL for every entry point: creating a builder fails, but
    # the network-definition API is fully inspectable.
    import pytest

    with pytest.raises(Exception):
        trt.Builder(trt.Logger())


def test_stubs_export_exactly_what_the_bindings_import(trt_modules):
    # nm on the real extension lists the TensorRT C entry points; the stub libraries
    # must provide each of them (else the import fails) -- and the fallback list agrees.
    for version in ("11.4", "10.3"):
        so = trt_harness.CACHE_DIR / f"site-{version}" / "tensorrt_bindings" / "tensorrt.so"
        assert sorted(trt_harness.entry_points(so)) == sorted(trt_harness.KNOWN_ENTRY_POINTS)
