"""ELECTRA pre-training from the command line.

  python -m electra_jax.main --config=configs/tiny.py --workdir=runs/tiny [--config.train.steps=50]

Running the same command again resumes from the newest checkpoint in --workdir.
"""

from electra_jax import cli, train

if __name__ == '__main__':
  cli.run(train.train_and_evaluate)
