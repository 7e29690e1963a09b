"""The plugin layers: trtnet's plugins and libnvinfer_plugin's ModulatedDeformConv2d through their CPU twins."""

from __future__ import annotations

import numpy as np

from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from .base import EmulatorTypeError, ILayer


class IPluginV3Layer(ILayer):
    """A plugin executed by its CPU twin (see :mod:`trtnet.emulator.plugins`)."""

    _kind = "PluginV3"
    _layer_type = trt.LayerType.PLUGIN_V3

    def __init__(self, network, inputs, plugin):
        self._plugin = plugin
        super().__init__(network, inputs, num_outputs=plugin.num_outputs)

    @property
    def plugin(self):
        self._record("plugin", "get")
        return self._plugin

    def _output_dtypes(self):
        try:
            return self._plugin.output_dtypes(self._in_types())
        except (TypeError, ValueError) as exc:
            raise EmulatorTypeError(self._err(str(exc))) from None

    def _output_shapes(self):
        try:
            return [trt.Dims(s) for s in self._plugin.output_shapes(self._in_shapes())]
        except ValueError as exc:
            raise ValueError(self._err(str(exc))) from None

    def _execute(self, xs):
        outs = self._plugin.execute(xs)
        return [np.asarray(o, dtype=trt.nptype(t)) for o, t in zip(outs, self._output_dtypes())]


class IPluginV2Layer(IPluginV3Layer):
    """An IPluginV2DynamicExt plugin (``network.add_plugin_v2``), executed by its CPU twin."""

    _kind = "PluginV2"
    _layer_type = trt.LayerType.PLUGIN_V2
