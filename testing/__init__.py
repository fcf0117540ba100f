"""The test world: local stand-ins for the systems agentctl manages, and the demo.

Not part of the runtime package and not shipped in the wheel: it needs the dev
extra (moto, werkzeug, requests) and runs from a checkout, with the repository
root on ``sys.path`` (pytest's ``pythonpath``, ``python -m`` from the root).

- :mod:`testing.github`: a GitHub REST API emulator (``python -m testing.github``).
- :mod:`testing.demo`: ``make demo``, the whole story against local servers.
- :mod:`testing.demo_agent`: the stand-in agent the demo runs under ``agentctl exec``.
"""
