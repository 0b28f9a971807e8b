"""Run every benchmark: ``python -m bench`` (sizes fit a 2-core machine; see each module)."""

from bench import finetune, learn, lifelong, model_store, online, ranking, recommend

online.main([])
learn.main(["--label", "latest"])  # needs the services: source .cache/services/env
finetune.main(["--samples", "200000", "--batch", "8192"])
model_store.main(["--users", "10000,100000"])
recommend.main(["--knobs"])
lifelong.main([])
ranking.main([])
