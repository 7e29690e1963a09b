"""The README.md written into every exported Triton repository (how to serve and call it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional


def repository_readme(settings: Any, model_names: Mapping[str, str], plugin_library: Optional[Path],
                      emulated: bool) -> str:
    name = settings.name
    video = "nonkeyframe" in model_names  # an image config: the keyframe model alone
    engines = "two engine models are" if video else "keyframe model (an image config: no other) is"
    kind = (lambda what: f"{what}s") if video else (lambda what: f"a {what}")
    lib = f"$REPO/plugins/{plugin_library.name}" if plugin_library else "/path/to/libtrtnet_plugins.so"
    mode = (f"**CPU test mode** (`--backend emulator`): the {engines} {kind('Python-backend model')} "
            "running trtnet's NumPy emulator. Slow, exact, no GPU; for testing the repository."
            if emulated else
            f"The {engines} {kind('TensorRT plan')} (`platform: \"tensorrt_plan\"`); {'they need' if video else 'it needs'} the trtnet "
            "plugin library (Fast NMS, inverse warp) loaded into the server, one of the two ways below.")
    if video:
        schedule = (f"per stream (correlation id) it keeps the frame count and the keyframe state on the GPU, "
                    f"sends keyframes (every {settings.keyframe_interval}th frame, the first, after START, on a "
                    f"frame-size change"
                    + (f", on motion above {settings.motion_threshold}" if settings.motion_threshold is not None
                       else "")
                    + f") to `{model_names['keyframe']}` and the others to `{model_names['nonkeyframe']}`")
        rows = (f"| `{model_names['keyframe']}` | the keyframe network, stateless, dynamic batching |\n"
                f"| `{model_names['nonkeyframe']}` | the non-keyframe network, stateless, dynamic batching; the "
                "keyframe state comes in as inputs |")
    else:
        schedule = (f"an image config (no flow network): every frame is a keyframe, sent to "
                    f"`{model_names['keyframe']}` (streams, i.e. correlation ids, only order the frames)")
        rows = f"| `{model_names['keyframe']}` | the keyframe network, stateless, dynamic batching |"
    return f"""# trtnet Triton model repository: `{name}`

Written by `trtnet export-triton`. {mode}

| model | what it is |
|---|---|
| `{name}` | the model clients call: Python-backend orchestrator (BLS) under the sequence batcher; {schedule}, assembles the masks and answers `classes`, `scores` (box), `mask_scores` (re-scored by the engines for YOLACT++, else the box scores), `boxes`, `masks`, `keyframe` |
{rows}

Streams idle for more than {settings.idle_timeout_s:g} s are forgotten (the sequence batcher's
`max_sequence_idle_microseconds` and the orchestrator's eviction use the same value): the next
frame of such a stream must carry START again.

## Python environment of the server
The Python models import trtnet: `pip install trtnet` (and `cupy-cuda12x` for GPU mask assembly)
in the server's Python environment (e.g. in the `nvcr.io/nvidia/tritonserver:<xx.yy>-py3` container).

## Start the server (the plugin library, two ways)
```sh
REPO=/path/to/this/repository
# 1. the TensorRT backend loads it (dlopen; the library registers its plugins on load):
tritonserver --model-repository=$REPO --backend-config=tensorrt,plugins="{lib}"
# 2. or preload it into the server process:
LD_PRELOAD={lib} tritonserver --model-repository=$REPO
```
Build the plugin library with the TensorRT version of your Triton release (an engine and its
plugins must match the server's TensorRT).
YOLACT++ plans also use TensorRT's own plugin library, libnvinfer_plugin (`ModulatedDeformConv2d`
for the deformable convolutions): Triton's TensorRT backend registers it itself when it starts
(`initLibNvInferPlugins(logger, "")` in TRITONBACKEND_Initialize, triton-inference-server/tensorrt_backend
src/tensorrt.cc), so nothing is to be loaded for it; a server whose TensorRT lacks it cannot load those plans.

## Call it
```sh
python -m trtnet.triton.client --url localhost:8001 --model {name} cam0.mp4 cam1.mp4   # one stream per camera
perf_analyzer -m {name} -i grpc -u localhost:8001 --sequence-length 100 --concurrency-range 4 \\
    --shape {'frame'}:720,1280,3   # 4 concurrent sequences of 100 frames
```
"""
