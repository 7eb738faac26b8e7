"""A GLUE task from a prepared TFDS glue dataset: --config=configs/finetune/glue.py:cola (cola, sst2,
mrpc, qqp, stsb, mnli, qnli, rte). The metric, evaluation split and epochs follow the paper."""

from configs.finetune import common


def get_config(task: str = 'cola'):
  config = common.get_config()
  config.kind = 'regression' if task == 'stsb' else 'classification'
  config.tfds = f'glue/{task}'
  # The paper's epochs exactly, so that the scores compare with its GLUE results: every GLUE task
  # has thousands of training rows.
  config.train.min_steps = 0
  return config
