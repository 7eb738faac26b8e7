"""Fine-tuning from the command line.

  python -m electra_jax.finetune --config=configs/finetune/classification.py --workdir=runs/cls \
      --config.init_checkpoint=runs/tiny --config.train_file=train.csv --config.eval_file=dev.csv

writes one seed_<n>/ directory per seed, results.json (every finished seed's metrics and their
median) and the median seed's predictions.*. Running the same command again resumes where it
stopped.
"""

from electra_jax import cli
from electra_jax.finetune import train

if __name__ == '__main__':
  cli.run(train.finetune)
