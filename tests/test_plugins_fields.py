"""Plugin fields reach the creator intact: TensorRT's PluginFieldCollection is a bound
``std::vector<PluginField>`` of raw pointers that keeps no array alive (the bindings'
ForwardDeclarations.h: PluginField "does not own any of it's members"), so
:meth:`PluginSpec.create_plugin` keeps the arrays referenced until the creator returns. The
emulator's collection behaves the same way, and refuses to read what was freed."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from trtnet import emulator
from trtnet.plugins.specs import FAST_NMS, INVERSE_WARP

FIELDS = {"top_k": 123, "conf_thresh": 0.125, "nms_thresh": 0.375, "max_det": 17, "background_class": 0}


class ReadingCreator:
    """Stands in for a C++ creator: allocates (as the builder would) before reading the fields."""

    def __init__(self) -> None:
        self.read: dict = {}

    def create_plugin(self, name, field_collection, phase):
        churn = [np.full(4, 7 + i, np.int64) for i in range(200)]  # reuses freed small blocks
        self.read = {f.name: np.array(f.data).reshape(-1)[0].item() for f in field_collection}
        del churn
        return f"plugin {name}"


def _old_style_collection(trt, spec, **values):
    """What specs.field_collection did: a collection built from temporaries and returned."""
    resolved = spec.resolve(values)
    types = {"int32": trt.PluginFieldType.INT32, "float32": trt.PluginFieldType.FLOAT32}
    return trt.PluginFieldCollection([trt.PluginField(f.name, resolved[f.name], types[f.dtype]) for f in spec.fields])


@pytest.fixture(params=["11.4", "10.3", "emulator"], ids=lambda v: f"trt{v}" if v[0].isdigit() else v)
def any_trt(request, trt_modules):
    """The real 11.4 and 10.3 bindings and the emulator."""
    return emulator.trt if request.param == "emulator" else trt_modules[request.param]


def test_a_collection_keeps_no_array_alive_in_tensorrt_and_the_emulator(any_trt):
    # The structural fact behind the defect, deterministic on the real 11.4 and 10.3 bindings.
    array = np.array([200], np.int32)
    alive = weakref.ref(array)
    field = any_trt.PluginField("top_k", array, any_trt.PluginFieldType.INT32)
    collection = any_trt.PluginFieldCollection([field])
    del array
    gc.collect()
    assert alive() is not None  # the Python PluginField keeps its array (keep_alive)
    del field
    gc.collect()
    assert alive() is None and len(collection) == 1  # the collection does not


def test_fields_reach_the_creator_intact_on_tensorrt(trt):
    creator = ReadingCreator()
    assert FAST_NMS.create_plugin(trt, creator, "nms", FIELDS) == "plugin nms"
    assert creator.read == pytest.approx(FIELDS, rel=0, abs=0)


def test_fields_reach_the_emulated_creator_intact():
    creator = emulator.trt.get_plugin_registry().get_creator(FAST_NMS.name, FAST_NMS.version, FAST_NMS.namespace)
    plugin = FAST_NMS.create_plugin(emulator.trt, creator, "nms", FIELDS)
    assert {k: np.asarray(v).reshape(-1)[0].item() for k, v in plugin.fields.items()} == FIELDS
    warp = emulator.trt.get_plugin_registry().get_creator(INVERSE_WARP.name, "1", "trtnet")
    assert INVERSE_WARP.create_plugin(emulator.trt, warp, "w", flow_divisor=4.0).fields["flow_divisor"][0] == 4.0


def test_the_emulator_refuses_fields_whose_arrays_were_freed():
    collection = _old_style_collection(emulator.trt, FAST_NMS, **FIELDS)
    creator = emulator.trt.get_plugin_registry().get_creator(FAST_NMS.name, FAST_NMS.version, FAST_NMS.namespace)
    with pytest.raises(RuntimeError, match="PluginField 'top_k': its data was freed.*until create_plugin returns"):
        creator.create_plugin("nms", collection, emulator.trt.TensorRTPhase.BUILD)
    with pytest.raises(RuntimeError, match="data was freed"):
        ReadingCreator().create_plugin("nms", collection, None)


def test_the_emulated_creator_takes_only_a_plugin_field_collection():
    creator = emulator.trt.get_plugin_registry().get_creator(FAST_NMS.name, FAST_NMS.version, FAST_NMS.namespace)
    field = emulator.trt.PluginField("top_k", np.array([5], np.int32), emulator.trt.PluginFieldType.INT32)
    with pytest.raises(TypeError, match="must be a trt.PluginFieldCollection, got list"):
        creator.create_plugin("nms", [field], emulator.trt.TensorRTPhase.BUILD)
