"""`make demo` (``python -m testing.demo`` from the repository root): see :mod:`testing.demo.script`."""
