"""ELECTRA-Large (paper Table 6): 24 layers x 1024, mask rate 25%, 400K steps of 2048 x 512.

  python -m electra_jax.main --config=configs/large.py --workdir=runs/large

Expected cost: 2.3e15 model FLOPs per step, 9.1e20 in all; about 27 days of one H100 (3.4 days of
eight) at the 40% MFU that docs/benchmarks.md targets for Base (not yet measured on a GPU).
"""

from configs import base


def get_config():
  config = base.get_config()
  config.model.embedding_size = 1024
  config.model.hidden_size = 1024
  config.model.num_layers = 24
  config.model.num_heads = 16
  config.model.intermediate_size = 4096
  config.model.generator_fraction = 1 / 4
  config.objective.mask_prob = 0.25
  config.train.batch_size = 2048
  config.train.steps = 400_000
  return config
