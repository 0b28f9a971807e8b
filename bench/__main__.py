"""Run every benchmark: ``python -m bench`` (sizes fit a 2-core machine; see each module)."""

from bench import finetune, lifelong, model_store, online

online.main([])
finetune.main(["--samples", "200000", "--batch", "8192"])
model_store.main([])
lifelong.main([])
