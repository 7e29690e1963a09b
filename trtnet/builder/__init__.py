"""Building TensorRT engines: the build itself (:mod:`.engine`: profile, builder config,
strongly typed network, serialization), the JSON sidecar written next to every engine
(:mod:`.sidecar`), the timing cache (:mod:`.timing_cache`), the progress bars
(:mod:`.progress`) and the ``--dry-run`` report (:mod:`.plan_summary`).

May import: trtnet.config, trtnet.names, media (atomic files), plugins, emulator, network and
precision. Never runtime, triton or a command. Nothing here imports ``tensorrt`` at import time.
"""
