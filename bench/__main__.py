"""Run every benchmark: ``python -m bench``."""

from bench import online

online.main([])
