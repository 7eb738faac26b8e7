"""Every field of a fine-tuning config, with its default and meaning.

The kind files (classification.py, regression.py, qa.py, tagging.py) and glue.py set `kind` and what
the task needs. Model sizes and the tokenizer are not here: they come from the pre-training run named
by `init_checkpoint`. Zero means "the paper's default" for the learning rate, its layer-wise decay and
the number of epochs (reference section 6), the epochs raised to `train.min_steps` updates on small
tasks; the run logs the values it resolved.
"""

import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.init_checkpoint = ''  # A pre-training --workdir: its config.json, tokenizer and checkpoint.
  # Instead, a Hugging Face ELECTRA folder (config.json, model.safetensors or pytorch_model.bin, and
  # vocab.txt or tokenizer.model), e.g. a download of google/electra-small-discriminator.
  config.init_from_hf = ''
  config.from_scratch = False  # Same sizes and tokenizer, random weights: the no-pre-training baseline.
  config.kind = 'classification'  # classification, regression, qa or tagging.

  # --- data: user files, or a prepared TFDS dataset (glue/<task>, squad/v1.1, squad/v2.0) ---
  config.train_file = ''  # classification/regression: .csv/.tsv/.jsonl; qa: SQuAD .json; tagging: CoNLL.
  config.eval_file = ''
  config.tfds = ''  # Instead of files, e.g. 'glue/cola' or 'squad/v2.0'; nothing is downloaded.
  config.tfds_data_dir = ''  # '' = $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.labels = ''  # Comma-separated label names in order; '' = the training labels, sorted.
  config.tag_column = -1  # tagging: the CoNLL column holding the tag (the word is column 0).
  config.max_seq_length = 128  # Tokens per example (per window for qa); at most the model's positions.
  # classification/regression head on [CLS]: 'hf' = dense + GELU + dense, as transformers'
  # ElectraForSequenceClassification (so the result exports to it); 'original' = one dense layer,
  # as google-research/electra (it cannot be exported to transformers).
  config.classifier_head = 'hf'

  # --- qa: SQuAD windows and decoding (the original's values) ---
  config.qa = ml_collections.ConfigDict()
  config.qa.max_query_length = 64  # Question pieces kept.
  config.qa.doc_stride = 128  # Pieces between the starts of consecutive context windows.
  config.qa.n_best = 20  # Start and end candidates per window considered in decoding.
  config.qa.max_answer_length = 30  # Longest answer, in pieces.
  config.qa.answerable_weight = 0.5  # SQuAD 2.0: weight of the answerability loss.
  config.qa.answerable_threshold = 0.0  # SQuAD 2.0: answer only if the answerability logit >= this.

  # --- train: configs/common.py's fields that mean the same here (optimizer constants, how the step
  # computes, the non-finite policy, the profile window), then fine-tuning's own and its defaults ---
  pretraining = common.get_config().train
  config.train = ml_collections.ConfigDict(
      {name: pretraining[name] for name in common.SHARED_TRAIN_FIELDS})
  config.train.epochs = 0.0  # 0 = the paper's: 3; 10 for RTE and STS-B; 2 for SQuAD (see min_steps).
  # With epochs left at 0, at least this many updates: the paper's 3 epochs of a 1,000-row task are
  # 93 updates, after which random and pre-trained weights alike still predict the majority class;
  # about 300 learn. An explicit epochs is honoured exactly; 0 = no floor (glue.py and qa.py).
  config.train.min_steps = 300
  config.train.batch_size = 32  # Global batch, in examples (qa: windows).
  config.train.eval_batch_size = 128  # Global batch for evaluation.
  config.train.learning_rate = 0.0  # Peak rate; 0 = the paper's for the model's size: 3e-4 for
  #   Small (hidden <= 256), 1e-4 for Base (<= 768), 5e-5 for Large.
  config.train.layerwise_lr_decay = 0.0  # 0 = the paper's: 0.8, or 0.9 for 24+ layers; 1 = off.
  config.train.original_layer_decay = False  # Reproduce the original's off-by-one (top layer decay^2).
  config.train.warmup_fraction = 0.1  # Share of the steps spent warming up, then linear decay to 0.
  config.train.log_every = 50  # Steps between training records.
  config.train.checkpoint_every = 1_000  # Steps between checkpoints (one is always written at the end).
  config.train.dtype = 'float32'  # Short runs whose scores are compared with the paper's: full precision.

  # Each seed fine-tunes from the same checkpoint with its own head init, dropout and data order; the
  # results are reported per seed and as the median, as the paper does. E.g. --config.seeds=0,1,2,3,4
  config.seeds = '0'

  config.mesh = common.get_config().mesh
  return config
