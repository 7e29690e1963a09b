"""CPU test mode: a Python-backend stand-in for a ``tensorrt_plan`` model, running trtnet's
emulator on the same named inputs and outputs as the engine it replaces.

``trtnet export-triton --backend emulator`` writes it for ``<name>_keyframe`` and
``<name>_nonkeyframe`` so that the whole repository (orchestrator, sequence batcher, BLS,
state handoff) runs on a real Triton server without a GPU. Slow (the emulator is NumPy), exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class TritonPythonModel:
    """Triton Python-backend entry points for one emulated network."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        from trtnet.runtime.emulated import EmulatedEngine
        from trtnet.network.weights import load_weights

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        weights = load_weights(version_dir / params["weights"])
        self.engine = EmulatedEngine(weights, params["config"], nonkeyframe=params["role"] == "nonkeyframe",
                                     plan=params.get("precision_plan") or None)
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                inputs = {name: self.pb.get_input_tensor_by_name(request, name).as_numpy()
                          for name in self.engine.inputs}
                out = self.engine.run(inputs)
                requested = request.requested_output_names() or self.outputs
                responses.append(self.pb.InferenceResponse(
                    output_tensors=[self.pb.Tensor(n, np.ascontiguousarray(out[n])) for n in requested]))
            except Exception as exc:  # noqa: BLE001 - the client gets the message, the model keeps serving
                responses.append(self.pb.InferenceResponse(error=self.pb.TritonError(f"{type(exc).__name__}: {exc}")))
        return responses
