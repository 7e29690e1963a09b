"""Serving trtnet on NVIDIA Triton Inference Server, video state included.

``trtnet export-triton`` writes a model repository (:mod:`trtnet.triton.export`):
two stateless models (``<name>_keyframe``, ``<name>_nonkeyframe``: TensorRT plans, or the
emulator in the CPU test mode) and ``<name>``, a Python-backend orchestrator
(:mod:`trtnet.triton.orchestrator`) under Triton's sequence batcher that keeps each camera
stream's frame count and keyframe state and assembles the masks. An image config (no flow
network) gets the keyframe model alone, every frame a keyframe, behind the same orchestrator.

Room rule: triton may import runtime, builder (sidecars), network, emulator and media;
it never imports a command (``python -m trtnet.export_triton`` / ``trtnet export-triton`` call it).
"""
