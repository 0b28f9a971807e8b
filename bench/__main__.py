"""Run every benchmark: ``python -m bench``."""

from bench import model_store, online

online.main([])
model_store.main([])
