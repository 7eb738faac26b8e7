"""Pre-training input: from `config.data.source` to batches on the devices (data/inputs.py).

  builtin         stdlib docstrings + pydoc topics (data/builtin.py): works offline, the default
  text:GLOB       the user's UTF-8 text files: one sentence or line per line, blank line between documents
  jsonl:GLOB      JSON lines (.jsonl, .json): a record per document, its text under config.data.text_field
  parquet:GLOB    parquet files: a row per document, its text in the column config.data.text_field
                  (text: and jsonl: files may be compressed: .gz, .zst, .bz2)
  tfds:NAME       a TFDS text dataset already prepared (array_record) in config.data.tfds_data_dir
  synthetic       a learnable bigram stream, no files at all (tests and benchmarks)

Real sources go corpus -> tokenizer (data/tokenizer.py, trained and cached unless one is given) ->
examples (data/examples.py) -> a cached TFDS array_record dataset (data/dataset.py) -> grain batches
(data/pipeline.py). Whatever the source, training sees the same contract:
  - `train`: an iterator of process-local batches: dicts of int32 numpy arrays `input_ids`,
    `segment_ids`, `input_mask`, each [this process's rows of the global batch, max_seq_length], laid out
    `[CLS] A [SEP] B [SEP] [PAD]...` (with config.objective.whole_word_masking also bool `word_starts`:
    the position's piece begins a word), with `get_state()` -> JSON-serialisable dict and `set_state(dict)`
    so that the checkpoint holds its position and a resumed run continues with exactly the next batch;
  - `eval`: a fixed list of such batches (possibly empty), the same at every evaluation;
  - `unigram_entropy`: of the pieces that masking may choose (data/unigram.py), the generator's
    yardstick: stored with the built dataset, computed from the chain for the synthetic source.
Masking is not part of the data: it is drawn on device, every step (electra_jax/rtd.py).
"""

from electra_jax.data.inputs import (Data, Placement, Text, build, cache_dir, data_dir, load_corpus,
                                     load_tokenizer, prepare, resolve, with_special_ids)

__all__ = ['Data', 'Placement', 'Text', 'build', 'cache_dir', 'data_dir', 'load_corpus',
           'load_tokenizer', 'prepare', 'resolve', 'with_special_ids']
