"""Random weights of any config's shapes: no checkpoint needed to build or time a network.

He-scaled convolutions and sane BatchNorm statistics, so activations keep a usable range;
the shapes come from trtnet.network.weight_spec (the one place a config's keys are listed).
"""

from __future__ import annotations

import numpy as np

from trtnet.network.weight_spec import expected_shapes


def random_weights(config_name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights for every key of ``config_name`` (He-scaled convs, sane BN)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_shapes(config_name).items():
        shape = tuple(int(d) for d in shape)
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("num_batches_tracked"):
            out[key] = np.array(0, np.int64)
            continue
        elif key.endswith(("running_mean", "bias")):
            arr = rng.normal(0, 0.1, shape)
        elif len(shape) == 1:  # BN weight
            arr = rng.uniform(0.5, 1.0, shape)
        else:
            fan_in = int(np.prod(shape[1:])) or 1
            arr = rng.normal(0, np.sqrt(1.0 / fan_in), shape)
        out[key] = arr.astype(np.float32)
    return out
