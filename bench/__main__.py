"""Run every benchmark: ``python -m bench`` (sizes fit a 2-core machine; see each module)."""

from bench import finetune, model_store, online, ranking

online.main([])
finetune.main(["--samples", "200000", "--batch", "8192"])
model_store.main([])
ranking.main([])
