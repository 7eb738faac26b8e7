"""The defaults every preset shares, each field with its meaning.

Not a preset by itself: base.py adds the Base sizes (model widths and depth, sequence length, batch,
steps, learning rate), and small.py, large.py and tiny.py start from Base and change what the paper's
Table 6 changes. Any field can be overridden on the command line, e.g. `--config.train.steps=50`.
"""

import ml_collections

# config.train fields that fine-tuning's config (configs/finetune/common.py) takes from here: they
# mean the same there (optimizer constants, how the step computes, the non-finite policy, profiling).
SHARED_TRAIN_FIELDS = ('adam_b1', 'adam_b2', 'adam_eps', 'weight_decay', 'max_grad_norm',
                       'original_optimizer', 'nonfinite', 'dtype', 'attention', 'remat',
                       'scan_layers', 'profile_steps')


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # A folder with discriminator/ and generator/ Hugging Face ELECTRA or ModernBERT models (as
  # electra_jax.export writes them), or one ModernBERT masked LM (e.g. ModernBERT-base), to continue
  # pre-training from: it sets the architecture, model sizes and tokenizer, and a fresh run starts
  # from its weights ('' = random init). A resumed run reads its own checkpoint.
  config.init_from_hf = ''

  # --- model: sizes of the discriminator (base.py: widths, depth, heads; the generator's fraction of
  # the width); the generator is derived from them. ---
  config.model = ml_collections.ConfigDict()
  # 'electra': the paper's post-LN BERT blocks (model.py). 'modernbert': transformers' ModernBERT
  # (electra_jax/modernbert.py): pre-norm, RoPE, GeGLU, no biases, alternating sliding-window and
  # global attention; it reads the ModernBERT fields below, has no position, segment or embedding-size
  # settings of its own, and its generator is the discriminator's width with generator_num_layers.
  config.model.architecture = 'electra'
  config.model.vocab_size = 30522  # Rows of the token embedding table; must cover every token id.
  config.model.max_position_embeddings = 512  # Longest sequence the position table covers.
  config.model.type_vocab_size = 2  # Number of segment ids ([CLS] A [SEP] B [SEP] uses 0 and 1).
  config.model.dropout_rate = 0.1  # Dropout on embeddings and every residual branch.
  config.model.attention_dropout_rate = 0.1  # Dropout on attention probabilities.
  config.model.initializer_range = 0.02  # Stddev of the truncated-normal weight init.
  config.model.layer_norm_eps = 1e-12  # LayerNorm epsilon (BERT's and Hugging Face's value).
  # Absolute generator width; 0 = use generator_fraction (neither applies to ModernBERT).
  config.model.generator_hidden_size = 0
  # Generator depth; 0 = same as num_layers (ModernBERT: half of it, at least 1).
  config.model.generator_num_layers = 0
  # 'shared': generator and discriminator use one embedding block (the paper's choice);
  # 'untied': each has its own; 'gdes' (DeBERTa-v3): shared, but the discriminator reads
  # stop_gradient(token table) + its own zero-initialised delta, so only the generator's loss trains
  # the shared token table (export and fine-tuning fold the delta in).
  config.model.embedding_sharing = 'shared'
  # ModernBERT only (architecture='modernbert'), named and defaulted as transformers'
  # ModernBertConfig names them; the sizes above (hidden_size, num_layers, num_heads,
  # intermediate_size: the GeGLU's width, vocab_size, initializer_range) apply to both.
  config.model.local_attention = 128  # Sliding-window layers see keys up to half of this away.
  config.model.global_attn_every_n_layers = 3  # Layer i attends globally when i % n == 0.
  config.model.global_rope_theta = 160_000.0
  config.model.local_rope_theta = 10_000.0
  config.model.norm_eps = 1e-5
  config.model.norm_bias = False
  config.model.attention_bias = False
  config.model.mlp_bias = False
  config.model.decoder_bias = True  # The masked-LM decoder's output bias.
  config.model.classifier_bias = False  # The prediction head's dense layer.
  config.model.embedding_dropout = 0.0
  config.model.attention_dropout = 0.0  # On attention probabilities and the attention output.
  config.model.mlp_dropout = 0.0
  config.model.classifier_dropout = 0.0  # Before the RTD (or a task's) classifier.
  # What a fine-tuned sequence classifier reads: 'cls' ([CLS]) or 'mean' (over real tokens, as
  # ModernBERT-base's config.json says; init_from_hf takes the folder's).
  config.model.classifier_pooling = 'cls'

  # --- objective: replaced token detection (electra_jax/rtd.py). ---
  config.objective = ml_collections.ConfigDict()
  # 'rtd': ELECTRA. 'mlm': the paper's BERT baseline, a masked LM of the discriminator's sizes and
  # no generator (fine-tuning and export read it like an RTD run; gen_weight/disc_weight unused).
  config.objective.kind = 'rtd'
  # Fraction of real tokens chosen for the generator to predict: below 1 for rtd (the discriminator
  # starts at its log-odds), up to 1 for mlm.
  config.objective.mask_prob = 0.15
  config.objective.max_predictions = 0  # Cap per sequence; 0 = int((mask_prob + 0.005) * max_seq_length).
  # Choose whole words: every piece of a word or none (BERT's whole word masking). Words come from the
  # tokenizer ('▁' begins a sentencepiece word, '##' continues a WordPiece one); no rebuild needed.
  config.objective.whole_word_masking = False
  # Of the chosen positions, the share shown as [MASK], and as a random token (uniform over the
  # vocabulary, as BERT draws it); the rest keep their own. Unset (None): the kind's, 0.85 and 0 for
  # rtd (the paper's), 0.8 and 0.1 for mlm (BERT's 80/10/10); config.json holds the values used.
  config.objective.mask_token_fraction = ml_collections.config_dict.placeholder(float)
  config.objective.random_token_fraction = ml_collections.config_dict.placeholder(float)
  config.objective.gen_weight = 1.0  # Weight of the generator's masked-LM loss.
  config.objective.disc_weight = 50.0  # Weight of the discriminator's replaced-token loss.
  config.objective.temperature = 1.0  # Sampling temperature of the generator's softmax.
  config.objective.disallow_correct = False  # Forbid sampling the original token.

  # --- data: the corpus and how it becomes batches (electra_jax/data/__init__.py) ---
  config.data = ml_collections.ConfigDict()
  # 'builtin' (stdlib docstrings, offline), 'text:GLOB' (your files), 'jsonl:GLOB' / 'parquet:GLOB'
  # (a record per document), 'tfds:NAME' (a prepared TFDS text dataset) or 'synthetic' (a learnable
  # bigram stream, no files). text: and jsonl: files may be compressed (.gz, .zst, .bz2).
  config.data.source = 'builtin'
  config.data.text_field = 'text'  # The key (jsonl:) or column (parquet:) that holds a record's text.
  # jsonl:/parquet: records that are not valid JSON or lack a text string: True = skip and count them,
  # False = stop, naming the first.
  config.data.skip_bad_records = False
  # Built tokenizers and datasets are cached here; '' = $ELECTRA_JAX_DATA_DIR or ~/.cache/electra_jax.
  config.data.data_dir = ''
  # A sentencepiece .model with [PAD]=0, [UNK], [CLS], [SEP], [MASK], or a BERT/ELECTRA WordPiece
  # vocab.txt (any .txt); '' = train a sentencepiece model on the corpus with model.vocab_size pieces
  # (cached in data_dir).
  config.data.tokenizer = ''
  config.data.lowercase = True  # WordPiece only: lower-case the text first (BERT uncased).
  # WordPiece only: strip accents; None = when lower-casing (BERT's rule).
  config.data.strip_accents = ml_collections.config_dict.placeholder(bool)
  config.data.tfds_data_dir = ''  # Where tfds:NAME is prepared; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data.tfds_text_feature = 'text'  # The text feature of a tfds:NAME dataset.
  config.data.build_seed = 0  # Seeds example building (segment splits, short targets).
  config.data.eval_fraction = 0.01  # Share of the corpus held out as the validation split.
  config.data.max_eval_examples = 10_000  # Cap on the validation split.
  config.data.build_processes = 0  # Processes that build examples; 0 = one per CPU core.
  config.data.read_threads = 2  # Threads that read and batch examples ahead of the devices.
  # Token ids of the special pieces. Real sources take them from the tokenizer; 'synthetic' uses these.
  config.data.pad_id = 0
  config.data.cls_id = 2
  config.data.sep_id = 3
  config.data.mask_id = 4

  # --- train ---
  config.train = ml_collections.ConfigDict()
  # > 0: the generator gets its own optimizer (clipping and Adam) at this peak rate, on the same
  # schedule (Dong et al., ICML 2023: one Adam over both models undoes the loss weighting between
  # them); under 'gdes' so does the shared token table, which only the generator's loss trains.
  # 0: one optimizer for everything at learning_rate.
  config.train.generator_learning_rate = 0.0
  config.train.warmup_steps = 10_000  # Linear warmup from 0; then linear decay to 0 at `steps`.
  config.train.adam_b1 = 0.9
  config.train.adam_b2 = 0.999
  config.train.adam_eps = 1e-6
  config.train.weight_decay = 0.01  # Decoupled; not applied to LayerNorm parameters or biases.
  config.train.max_grad_norm = 1.0  # Global-norm gradient clipping before Adam.
  # Reproduce the original optimizer: Adam without bias correction, and the linear decay running
  # from step 0 multiplied by the warmup ramp.
  config.train.original_optimizer = False
  config.train.seed = 0  # Seeds initialisation, masking, sampling, dropout and data order.
  config.train.log_every = 100  # Steps between console, metrics.jsonl and TensorBoard records.
  config.train.checkpoint_every = 5_000  # Steps between checkpoints (a final one is always written).
  config.train.keep_checkpoints = 3  # Most recent checkpoints kept on disk.
  # A step whose loss or gradients are not finite never updates the parameters; then 'stop' ends
  # the run with an error naming the step and the last good checkpoint, 'skip' goes on and counts it.
  config.train.nonfinite = 'stop'
  config.train.eval_every = 5_000  # Steps between evaluations on the validation split; 0 = never.
  # How the step computes; none of it changes the parameters, checkpoints or exports (model.py).
  # 'bfloat16': activations and matmuls in bfloat16 (parameters, optimizer state, softmax, sampling
  # and losses stay float32); 'float32' everywhere.
  config.train.dtype = 'bfloat16'
  # jax.nn.dot_product_attention's kernel: 'auto' = cuDNN flash attention on GPU in bfloat16, XLA
  # elsewhere. Attention dropout (model.attention_dropout_rate, ModernBERT's attention_dropout > 0)
  # always uses XLA while training, and so do ModernBERT's sliding-window layers.
  config.train.attention = 'auto'
  # Rematerialisation of each layer in the backward pass: 'none', 'matmuls' (keep the weight
  # matmuls' outputs, recompute the rest) or 'full' (keep only the layer's input): less memory,
  # more compute, for larger batches or longer sequences.
  config.train.remat = 'none'
  config.train.scan_layers = False  # lax.scan over layers: compile time stops growing with depth.
  config.train.eval_batches = 20  # Global batches per evaluation (fewer if the split is smaller).
  # 'START:STOP' (e.g. '10:15'): a jax.profiler trace of steps START to STOP - 1 (counted from 0;
  # start after the first, which compiles) into workdir/tensorboard, where TensorBoard's profile
  # plugin opens it, each step annotated; written by process 0. '' = no trace.
  config.train.profile_steps = ''

  # --- mesh: how devices are laid out. data, fsdp and tensor split the devices of one slice (one
  # TPU slice, or one host of a GPU cluster when the dcn_ axes are used); one may be -1 (= all
  # remaining devices). The dcn_ axes multiply them across slices (multi-slice TPU) or hosts, over
  # the data-center network: keep parameter traffic off it (dcn_data, or dcn_fsdp with care).
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # Pure data parallelism: parameters replicated.
  config.mesh.fsdp = 1  # Data parallelism with parameters and optimizer state sharded.
  config.mesh.tensor = 1  # Heads, FFN and vocabulary split across devices.
  config.mesh.dcn_data = 1  # Slices (or hosts) doing data parallelism; the job must have this many.
  config.mesh.dcn_fsdp = 1
  config.mesh.dcn_tensor = 1
  # Logical array axes (named in electra_jax/model.py) -> mesh axes; unlisted (or None) axes are
  # replicated. One list, in two groups:
  config.mesh.rules = (
      # Weights (and their optimizer state): FSDP splits the embedding dimension of every matrix,
      # tensor parallelism the heads, the FFN and the vocabulary.
      ('vocab', 'tensor'),
      ('embed', 'fsdp'),
      ('heads', 'tensor'),
      ('mlp', 'tensor'),
      # Activations: 'batch' (also every input batch's rows) over the data-parallel axes, the
      # width between blocks whole (FSDP gathers weights, not activations), the attention heads,
      # FFN and logits split as their weights are.
      ('batch', ('data', 'fsdp')),
      ('act_length', None),
      ('act_embed', None),
      ('act_heads', 'tensor'),
      ('act_mlp', 'tensor'),
      ('act_vocab', 'tensor'),
  )
  return config
