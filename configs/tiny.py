"""The quick start: a 2-layer x 128 ELECTRA on the builtin corpus, about 4 minutes on 2 CPU cores.

  python -m electra_jax.main --config=configs/tiny.py --workdir=runs/tiny

Fine-tuned with the README's command (fine-tuning seeds 0, 1, 2; pre-training seeds 0, 1, 2) it lands
within -0.9 to +1.6 points of random weights on the docstring demo and -2.7 to +7.2 on the pair
task; 4 times its steps give +5 to +8.5 on the pair task, 16 times +8.2 (docs/quality.md,
bench/quality.py). It is also the base of the tests' small config.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.model.vocab_size = 1024
  config.model.embedding_size = 128
  config.model.hidden_size = 128
  config.model.num_layers = 2
  config.model.num_heads = 2
  config.model.intermediate_size = 512
  config.model.max_position_embeddings = 128
  config.model.generator_fraction = 1 / 2
  config.data.max_seq_length = 128
  # docs/quality.md has the ablation behind each value.
  config.train.steps = 1000
  config.train.batch_size = 32
  config.train.learning_rate = 3e-4
  config.train.warmup_steps = 100
  # The generator on its own, slower optimizer: at the shared rate it reaches unigram-level
  # guesses within 200 steps, and the small discriminator cannot keep up with it.
  config.train.generator_learning_rate = 1e-4
  # More replaced tokens per sequence: more signal for both models per step.
  config.objective.mask_prob = 0.25
  # A CPU preset: float32, so that runs on different meshes and process counts (the tests compare
  # them) differ by float32 rounding only.
  config.train.dtype = 'float32'
  config.train.log_every = 50
  config.train.checkpoint_every = 250
  config.train.eval_every = 200
  config.train.eval_batches = 8
  config.data.eval_fraction = 0.05  # The builtin corpus is small: hold out enough for 8 batches.
  return config
