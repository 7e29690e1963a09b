"""Serving trtnet on NVIDIA Triton Inference Server, video state included.

``python -m trtnet.export-triton`` writes a model repository (:mod:`trtnet.triton.export`):
two stateless models (``<name>_keyframe``, ``<name>_nonkeyframe``: TensorRT plans, or the
emulator in the CPU test mode) and ``<name>``, a Python-backend orchestrator
(:mod:`trtnet.triton.orchestrator`) under Triton's sequence batcher that keeps each camera
stream's frame count and keyframe state and assembles the masks.
"""
