"""Everything the emulator offers, and everything model code uses on it, exists in
the REAL TensorRT Python bindings (11.4 and 10.3) with the same name and meaning.

Checked against the real modules (tests/trt_harness.py): method names and
parameter names (from the bindings' own signatures), layer attributes (property
vs method), enum members and their values, and the constructors model code calls.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types

import numpy as np
import pytest

import emulator_every_op
import trt_harness
from trtnet import emulator
from trtnet.emulator import layers as emu_layers
from trtnet.emulator import plugins as emu_plugins
from trtnet.emulator.tensor import ITensor as EmuTensor
from trtnet.emulator.usage import ApiUsage


# --- helpers ------------------------------------------------------------------------------
def _public_names() -> dict[str, object]:
    """Names ``emulator.trt`` exposes (not imported modules or __future__ features)."""
    out = {}
    for name, value in vars(emulator.trt).items():
        if (name.startswith("_") or name in ("annotations", "names_used")
                or isinstance(value, types.ModuleType)):
            continue
        out[name] = value
    return out


def _is_property(real_cls, name: str) -> bool:
    for cls in inspect.getmro(real_cls):
        if name in vars(cls):
            return isinstance(vars(cls)[name], property) or type(vars(cls)[name]).__name__ in (
                "property", "nb_property", "getset_descriptor")
    return False


def _accepts(real_func, n_positional: int, keywords: frozenset[str]) -> bool:
    """True when some overload of the bound function takes these arguments by these names."""
    for overload in trt_harness.overloads(real_func):
        params = overload[1:]  # drop self
        names = [n for n, _ in params]
        if n_positional > len(params):
            continue
        if not set(keywords) <= set(names[n_positional:]):
            continue
        covered = set(names[:n_positional]) | set(keywords)
        if all(n in covered or has_default for n, has_default in params):
            return True
    return False


def usage_problems(usage: ApiUsage, trt) -> list[str]:
    """Every recorded call, attribute and enum member that the real ``trt`` lacks."""
    problems = []
    for cls_name, method, npos, kws in sorted(usage.calls, key=str):
        real_cls = getattr(trt, cls_name, None)
        real = getattr(real_cls, method, None)
        if real is None:
            problems.append(f"{cls_name}.{method} does not exist")
        elif not _accepts(real, npos, kws):
            problems.append(f"{cls_name}.{method}: no overload takes {npos} positional + {sorted(kws)} "
                            f"(real: {trt_harness.signature(real)})")
    for cls_name, attr, access in sorted(usage.attributes):
        real_cls = getattr(trt, cls_name, None)
        if real_cls is None:
            problems.append(f"class {cls_name} does not exist")
        elif not hasattr(real_cls, attr):
            problems.append(f"{cls_name}.{attr} does not exist")
        elif access in ("get", "set") and not _is_property(real_cls, attr):
            problems.append(f"{cls_name}.{attr} is not a property in TensorRT")
        elif access == "call" and _is_property(real_cls, attr):
            problems.append(f"{cls_name}.{attr} is a property in TensorRT, not a method")
    for enum_name, member in sorted(usage.enums):
        real_enum = getattr(trt, enum_name, None)
        if real_enum is None or member not in real_enum.__members__:
            problems.append(f"{enum_name}.{member} does not exist")
    return problems


def _emulator_methods(cls) -> dict[str, object]:
    return {n: v for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}


def _param_names(func) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


# --- the emulator's namespace -------------------------------------------------------------
def test_every_emulator_trt_name_exists_in_tensorrt(trt):
    missing = [n for n in _public_names() if n != "__version__" and not hasattr(trt, n)]
    assert missing == []


def test_emulator_enum_members_have_tensorrt_names_and_values(trt):
    wrong = []
    for name, value in _public_names().items():
        if isinstance(value, type) and issubclass(value, enum.Enum):
            real = getattr(trt, name)
            for member in value:
                if member.name not in real.__members__:
                    wrong.append(f"{name}.{member.name} missing")
                elif int(real.__members__[member.name]) != member.value:
                    wrong.append(f"{name}.{member.name} = {member.value}, TensorRT {int(real.__members__[member.name])}")
    assert wrong == []


def test_datatype_aliases_match_tensorrt(trt):
    for alias in ("float32", "float16", "int8", "int32", "int64", "uint8", "bool"):
        assert getattr(trt, alias).name == getattr(emulator.trt, alias).name, alias


def test_constructors_model_code_calls_work_on_tensorrt(trt):
    # The emulator's constructors are called the same way as these real ones.
    w = trt.Weights(np.ones((2, 3), np.float32))
    assert w.size == 6 and w.dtype == trt.DataType.FLOAT
    assert trt.Weights(np.ones(3, np.float16)).dtype == trt.DataType.HALF
    assert tuple(trt.Dims((1, 3, -1, -1))) == (1, 3, -1, -1)
    assert tuple(trt.Permutation([0, 2, 3, 1]))[:4] == (0, 2, 3, 1)  # real Permutation has 8 slots
    field = trt.PluginField("top_k", np.array([200], np.int32), trt.PluginFieldType.INT32)
    assert field.name == "top_k" and field.type == trt.PluginFieldType.INT32
    assert len(trt.PluginFieldCollection([field])) == 1
    assert trt.nptype(trt.DataType.HALF) is np.float16


# --- network methods and layer classes ------------------------------------------------------
def test_network_methods_have_tensorrt_parameter_names(trt):
    wrong = []
    for name, func in _emulator_methods(emulator.Network).items():
        real = getattr(trt.INetworkDefinition, name, None)
        if real is None:
            wrong.append(f"{name}: missing")
            continue
        params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
        ours = [(p.name, p.default is not inspect.Parameter.empty) for p in params]
        theirs = [o[1:] for o in trt_harness.overloads(real)]
        if ours not in theirs:  # same names, and optional exactly where TensorRT's are
            wrong.append(f"{name}{tuple(ours)} vs TensorRT {theirs}")
    assert wrong == []


def test_network_properties_are_tensorrt_properties(trt):
    props = [n for n, v in vars(emulator.Network).items() if isinstance(v, property)]
    assert props and all(_is_property(trt.INetworkDefinition, n) for n in props), props


def _layer_classes():
    return [c for c in vars(emu_layers).values()
            if isinstance(c, type) and issubclass(c, emu_layers.ILayer)]


def test_layer_classes_and_attributes_exist_in_tensorrt(trt):
    wrong = []
    for cls in _layer_classes():
        real = getattr(trt, cls.__name__, None)
        if real is None:
            wrong.append(f"{cls.__name__} missing")
            continue
        for klass in cls.__mro__:
            if klass is object:
                continue
            for name, value in vars(klass).items():
                if name.startswith("_"):
                    continue
                is_prop = isinstance(value, (property, emu_layers._Attr))
                if not hasattr(real, name):
                    wrong.append(f"{cls.__name__}.{name} missing")
                elif is_prop != _is_property(real, name):
                    wrong.append(f"{cls.__name__}.{name}: property={is_prop}, TensorRT property={not is_prop}")
                elif not is_prop and callable(value):
                    theirs = [s[1:] for s in trt_harness.signature(getattr(real, name))]
                    if _param_names(value) not in theirs:
                        wrong.append(f"{cls.__name__}.{name}{tuple(_param_names(value))} vs {theirs}")
    assert wrong == []


def _emulated_classes() -> list[tuple[type, str]]:
    """Every emulated class model code holds, with its TensorRT class name."""
    return ([(c, c.__name__) for c in _layer_classes()]
            + [(EmuTensor, "ITensor"), (emulator.Network, "INetworkDefinition"),
               (emulator.trt.IBuilderConfig, "IBuilderConfig"), (emulator.trt.Weights, "Weights")])


def test_tensorrt_classes_have_no_instance_dict(trt):
    # The bindings' classes take no new attributes (tp_dictoffset 0): ``layer.typo = x`` raises
    # there, so the emulator refuses it too (trtnet.emulator.tensor.NoNewAttributes).
    assert [name for _, name in _emulated_classes() if getattr(trt, name).__dictoffset__ != 0] == []


def _real_settable(real_cls, name: str) -> bool:
    for cls in inspect.getmro(real_cls):
        if name in vars(cls):
            return getattr(vars(cls)[name], "fset", None) is not None
    return False


def test_every_attribute_the_emulator_lets_code_set_is_settable_in_tensorrt(trt):
    from trtnet.emulator.tensor import _settable

    wrong = []
    for cls, real_name in _emulated_classes():
        real = getattr(trt, real_name)
        names = {n for k in cls.__mro__ for n in vars(k) if not n.startswith("_")}
        for name in sorted(names):
            if _settable(cls, name) and not _real_settable(real, name):
                wrong.append(f"{real_name}.{name}")
    assert wrong == []


def test_emulator_refuses_attributes_tensorrt_lacks():
    net = emulator.Network()
    layer = net.add_identity(net.add_input("x", emulator.trt.float32, (2,)))
    for target in (layer, layer.get_output(0), net, emulator.trt.IBuilderConfig(), emulator.trt.Weights()):
        with pytest.raises(AttributeError):
            target.not_a_tensorrt_attribute = 1


def test_builder_config_api_matches_tensorrt(trt):
    ours = emulator.trt.IBuilderConfig
    wrong = []
    for name, value in vars(ours).items():
        if name.startswith("_"):
            continue
        real = getattr(trt.IBuilderConfig, name, None)
        if real is None:
            wrong.append(f"{name} missing")
        elif isinstance(value, property) != _is_property(trt.IBuilderConfig, name):
            wrong.append(f"{name}: property mismatch")
        elif callable(value) and not isinstance(value, property):
            theirs = [s[1:] for s in trt_harness.signature(real)]
            if _param_names(value) not in theirs:
                wrong.append(f"{name}{tuple(_param_names(value))} vs {theirs}")
    assert wrong == []


def test_layer_type_of_each_class_matches_tensorrt(trt):
    for cls in _layer_classes():
        if cls is emu_layers.ILayer:
            continue
        assert cls._layer_type.name in trt.LayerType.__members__, cls.__name__


def test_tensor_attributes_exist_in_tensorrt(trt):
    props = [n for n, v in vars(EmuTensor).items() if isinstance(v, property)]
    assert props and [n for n in props if not _is_property(trt.ITensor, n)] == []


def test_plugin_registry_api_matches_tensorrt(trt):
    pairs = [(emu_plugins.PluginRegistry, trt.IPluginRegistry),
             (emu_plugins.PluginCreator, trt.IPluginCreatorV3One),
             (emu_plugins.LegacyPluginCreator, trt.IPluginCreator)]  # libnvinfer_plugin's version-1 creators
    wrong = []
    for ours, real in pairs:
        for name, value in vars(ours).items():
            if name.startswith("_"):
                continue
            if not hasattr(real, name):
                wrong.append(f"{real.__name__}.{name} missing")
            elif callable(value) and not isinstance(value, property):
                theirs = [s[1:] for s in trt_harness.signature(getattr(real, name))]
                if _param_names(value) not in theirs:
                    wrong.append(f"{real.__name__}.{name}{tuple(_param_names(value))} vs {theirs}")
    assert wrong == []


# --- usage recorded while building networks ------------------------------------------------
def test_every_op_network_uses_only_tensorrt_api(trt):
    net = emulator.Network()
    emulator_every_op.build(net, emulator.trt)
    assert len(net.usage.calls) > 15  # the network really exercised the API
    assert usage_problems(net.usage, trt) == []


def test_usage_check_catches_a_wrong_parameter_name(trt):
    usage = ApiUsage()
    usage.call("INetworkDefinition", "add_convolution_nd", (1, 2, 3), {"weights": 1})
    usage.attribute("IResizeLayer", "selector_for_one_pixel", "set")
    usage.enums.add(("ResizeSelector", "LOWER"))
    problems = usage_problems(usage, trt)
    assert len(problems) == 3, problems


MODEL_CONFIGS = ("yolact_edge_vid_resnet50", "yolact_edge_mobilenetv2")


def _model_builders() -> list[str]:
    """Every ``build_*(network, trt, weights, config)`` of trtnet.network.yolact_edge (keyframe,
    and the non-keyframe network once it exists) -- new builders are covered automatically."""
    try:
        from trtnet.network import yolact_edge
    except ImportError:
        return ["build_keyframe"]
    found = []
    for name, fn in sorted(vars(yolact_edge).items()):
        if not (name.startswith("build_") and inspect.isfunction(fn)) or fn.__module__ != yolact_edge.__name__:
            continue
        params = list(inspect.signature(fn).parameters.values())
        required = [p.name for p in params if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if required == ["network", "trt", "weights", "config"]:
            found.append(name)
    return found


@functools.lru_cache(maxsize=None)
def _model_usage(builder: str, config_name: str, plan: str | None = None) -> ApiUsage:
    """API used while building network ``builder`` of ``config_name`` (random weights)."""
    try:
        from trtnet.network import yolact_edge
    except ImportError as exc:
        pytest.skip(f"trtnet.network.yolact_edge not importable yet: {exc}")
    from trtnet.network.random_weights import random_weights

    net = emulator.Network()
    kwargs = {}
    if plan:
        from trtnet.precision import AmaxRecorder, as_plan

        # int8 needs calibrated ranges; a recorder answers 1.0 for every tensor.
        kwargs["plan"] = as_plan(plan).with_amax(AmaxRecorder()) if "int8" in plan else plan
    getattr(yolact_edge, builder)(net, emulator.trt, random_weights(config_name), config_name, **kwargs)
    emulator.validate(net)  # what TensorRT's builder checks first: unique layer and tensor names
    usage = ApiUsage()
    usage.merge(net.usage)
    usage.merge(emu_plugins.usage)  # registry/creator calls are process-wide
    return usage


MODEL_CASES = [(b, c, None) for b in _model_builders() for c in MODEL_CONFIGS
               if b == "build_keyframe" or c == "yolact_edge_vid_resnet50"]  # video nets need a video config
MODEL_CASES.append(("build_keyframe", "yolact_edge_mobilenetv2", "fp16"))  # casts, HALF weights
MODEL_CASES.append(("build_keyframe", "yolact_edge_mobilenetv2", "int8"))  # Q/DQ, kernel via set_input
MODEL_CASES += [("build_nonkeyframe", "yolact_edge_vid_resnet50", p) for p in ("fp16", "int8")
                if "build_nonkeyframe" in _model_builders()]  # HALF warp plugin inputs; flow net Q/DQ
# YOLACT++: TensorRT's ModulatedDeformConv2d (libnvinfer_plugin), fp16 DCN inside an int8 backbone.
MODEL_CASES += [("build_keyframe", "yolact_plus_resnet50", p) for p in (None, "int8_backbone")]
# Presets mixing int8 and fp16 components (casts into Q/DQ at component borders).
MODEL_CASES.append(("build_keyframe", "yolact_edge_mobilenetv2", "int8_backbone_fpn"))
if "build_nonkeyframe" in _model_builders():
    MODEL_CASES.append(("build_nonkeyframe", "yolact_edge_vid_resnet50", "int8_backbone_fpn"))


@pytest.mark.parametrize("builder,config_name,plan", MODEL_CASES, ids=str)
def test_model_uses_only_tensorrt_api(trt, builder, config_name, plan):
    usage = _model_usage(builder, config_name, plan)
    assert ("INetworkDefinition", "add_convolution_nd") in {c[:2] for c in usage.calls}
    assert usage_problems(usage, trt) == []


def test_trt_names_read_by_model_code_exist_in_tensorrt(trt):
    for case in MODEL_CASES:
        _model_usage(*case)
    used = set(emulator.trt.names_used)
    assert "DataType" in used  # the recording works
    assert sorted(n for n in used if not hasattr(trt, n)) == []
