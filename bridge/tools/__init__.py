"""The integrator's tools: ``check --connect``, ``probe`` and ``scan``.

They use the drivers' own codec, planner and links; nothing here talks a protocol itself.
"""
