"""Checking trtnet against upstream: the reference cases in ``../shared/reference`` form
(:mod:`.reference_data`) and the comparison ``python -m trtnet.verify`` and the tests use
(:mod:`.compare`: tolerances, tensor and detection checks, the report).

May import every room below it (runtime, network, plugins, precision); never triton or a command.
"""
