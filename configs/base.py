"""ELECTRA-Base (paper Table 6): 12 layers x 768, generator 1/3 width, 766K steps of 256 x 512."""

from configs import common


def get_config():
  config = common.get_config()  # common.py's defaults are the Base preset.
  return config
