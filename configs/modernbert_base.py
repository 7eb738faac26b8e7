"""ModernBERT-base's architecture trained with RTD: 22 layers x 768, 12 heads, GeGLU 1152, sequences of
1024 tokens with global attention every third layer and 128-token windows in the others; the
generator is the discriminator's width with 11 layers (DeBERTa-v3's choice), so that the token table
is shared without a projection.

  python -m electra_jax.main --config=configs/modernbert_base.py --workdir=runs/modernbert_base

Expected cost: 3.1e14 model FLOPs per step, 1.2e20 in all, over the token budget of ELECTRA-Base
(383K steps of 256 x 1024 = its 766K steps of 256 x 512); about 3.5 days of one H100 at 40% MFU
(not yet measured on a GPU). The learning rate (2e-4) is ELECTRA-Base's, untuned for this backbone.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.model.architecture = 'modernbert'
  # ModernBERT-base's sizes and vocabulary (transformers' ModernBertConfig defaults).
  config.model.vocab_size = 50368
  config.model.hidden_size = 768
  config.model.num_layers = 22
  config.model.num_heads = 12
  config.model.intermediate_size = 1152
  # The trained length (ModernBERT-base's 8192 came from a later context extension).
  config.model.max_position_embeddings = 1024
  config.model.generator_num_layers = 11
  config.data.max_seq_length = 1024
  config.train.batch_size = 256
  config.train.steps = 383_000
  return config
