"""config.model <-> the config.json of Hugging Face ELECTRA and ModernBERT folders, as pure functions.

Export writes what transformers reads; import reads what transformers writes, including the fields
an older or newer version names differently (ModernBERT's `layer_types` and `rope_parameters`, or
`global_attn_every_n_layers` and `*_rope_theta` before them), and refuses what our models cannot build.
"""

import ml_collections

from electra_jax import model, modernbert
from electra_jax.errors import UserError


def hf_config(model_config, architecture: str, *, generator: bool = False, special_ids=None,
              **extra) -> dict:
  """config.json of an HF model of `architecture` (e.g. 'ElectraForPreTraining'); ModernBERT's
  names the special tokens' ids, which it reads from `special_ids` (pad_id, cls_id and sep_id: a
  config.data section, or a tokenizer's special_ids)."""
  if model.architecture(model_config) == 'modernbert':
    return _modernbert_config(model_config, architecture, generator, special_ids, **extra)
  if generator:
    hidden, heads, ffn, layers = model.generator_sizes(model_config)
  else:
    hidden, heads, ffn, layers = (model_config.hidden_size, model_config.num_heads,
                                  model_config.intermediate_size, model_config.num_layers)
  return {
      'architectures': [architecture], 'model_type': 'electra',
      'vocab_size': model_config.vocab_size, 'embedding_size': model_config.embedding_size,
      'hidden_size': hidden, 'num_hidden_layers': layers, 'num_attention_heads': heads,
      'intermediate_size': ffn, 'hidden_act': 'gelu',
      'hidden_dropout_prob': model_config.dropout_rate,
      'attention_probs_dropout_prob': model_config.attention_dropout_rate,
      'max_position_embeddings': model_config.max_position_embeddings,
      'type_vocab_size': model_config.type_vocab_size,
      'initializer_range': model_config.initializer_range,
      'layer_norm_eps': model_config.layer_norm_eps, 'pad_token_id': 0,
      'position_embedding_type': 'absolute', 'tie_word_embeddings': True, 'dtype': 'float32',
      **extra}


# config.model's fields that ModernBertConfig names alike, with its defaults (for a config.json
# that leaves them out).
MODERNBERT_FIELDS = {
    'local_attention': 128, 'global_attn_every_n_layers': 3, 'norm_eps': 1e-5, 'norm_bias': False,
    'attention_bias': False, 'mlp_bias': False, 'decoder_bias': True, 'classifier_bias': False,
    'embedding_dropout': 0.0, 'attention_dropout': 0.0, 'mlp_dropout': 0.0,
    'classifier_dropout': 0.0, 'classifier_pooling': 'cls', 'max_position_embeddings': 8192,
    'initializer_range': 0.02}
_THETAS = {'full_attention': ('global_rope_theta', 160_000.0),
           'sliding_attention': ('local_rope_theta', 10_000.0)}


def _modernbert_config(model_config, architecture: str, generator: bool, ids, **extra) -> dict:
  m = model_config
  layers = (model.generator_sizes(m) if generator else model.discriminator_sizes(m))[3]
  return {
      'architectures': [architecture], 'model_type': 'modernbert',
      'vocab_size': m.vocab_size, 'hidden_size': m.hidden_size, 'num_hidden_layers': layers,
      'num_attention_heads': m.num_heads, 'intermediate_size': m.intermediate_size,
      'hidden_activation': 'gelu', 'classifier_activation': 'gelu', 'initializer_cutoff_factor': 2.0,
      # A run recorded before a field existed has its default.
      **{name: m.get(name, default) for name, default in MODERNBERT_FIELDS.items()},
      'layer_types': ['full_attention' if modernbert.is_global(m, i) else 'sliding_attention'
                      for i in range(layers)],
      'rope_parameters': {kind: {'rope_type': 'default', 'rope_theta': m[ours]}
                          for kind, (ours, _) in _THETAS.items()},
      # What transformers before v5 reads instead of rope_parameters.
      **{ours: m[ours] for ours, _ in _THETAS.values()},
      'pad_token_id': ids['pad_id'], 'cls_token_id': ids['cls_id'], 'bos_token_id': ids['cls_id'],
      'sep_token_id': ids['sep_id'], 'eos_token_id': ids['sep_id'],
      'tie_word_embeddings': True, 'dtype': 'float32', **extra}


# config.model's fields that a folder's config.json sets: ours -> the discriminator's name.
_FROM_DISCRIMINATOR = {
    'vocab_size': 'vocab_size', 'embedding_size': 'embedding_size', 'hidden_size': 'hidden_size',
    'num_layers': 'num_hidden_layers', 'num_heads': 'num_attention_heads',
    'intermediate_size': 'intermediate_size', 'max_position_embeddings': 'max_position_embeddings',
    'type_vocab_size': 'type_vocab_size', 'dropout_rate': 'hidden_dropout_prob',
    'attention_dropout_rate': 'attention_probs_dropout_prob',
    'initializer_range': 'initializer_range', 'layer_norm_eps': 'layer_norm_eps'}
_MODERNBERT_SIZES = {'vocab_size': 'vocab_size', 'hidden_size': 'hidden_size',
                     'num_layers': 'num_hidden_layers', 'num_heads': 'num_attention_heads',
                     'intermediate_size': 'intermediate_size'}


def folder_fields(model_config) -> tuple[str, ...]:
  """config.model's fields that model_config (below) sets from a folder of its architecture."""
  if model.architecture(model_config) == 'modernbert':
    return ('architecture', *_MODERNBERT_SIZES, *MODERNBERT_FIELDS,
            *(ours for ours, _ in _THETAS.values()), 'generator_num_layers')
  return ('architecture', *_FROM_DISCRIMINATOR, 'generator_hidden_size', 'generator_num_layers')


def model_config(base: ml_collections.ConfigDict, discriminator: dict, generator: dict | None,
                 where: str) -> ml_collections.ConfigDict:
  """`base` (a config.model) with the architecture and sizes of HF's discriminator (or, for
  ModernBERT, masked LM) config.json, and those of the generator's where given."""
  kind = discriminator.get('model_type')
  if kind == 'modernbert':
    return _from_modernbert(base, discriminator, generator, where)
  if kind not in ('electra', None):
    raise UserError(f'{where}: model_type {kind!r} is neither electra nor modernbert; only '
                    'ELECTRA and ModernBERT folders can be read')
  for name, hf in (('discriminator', discriminator), ('generator', generator)):
    if hf is None:
      continue
    unsupported = {key: hf[key] for key, supported in
                   (('model_type', 'electra'), ('hidden_act', 'gelu'),
                    ('position_embedding_type', 'absolute')) if hf.get(key, supported) != supported}
    if unsupported:
      raise UserError(f'{where}: the {name} config has {unsupported}; only ELECTRA with GELU and '
                      'absolute positions is supported')
  missing = [theirs for theirs in _FROM_DISCRIMINATOR.values() if theirs not in discriminator]
  if missing:
    raise UserError(f'{where}: the discriminator config.json lacks {", ".join(missing)}')
  config = ml_collections.ConfigDict(base.to_dict())
  config.architecture = 'electra'
  config.update({ours: discriminator[theirs] for ours, theirs in _FROM_DISCRIMINATOR.items()})
  if generator is not None:
    shared = ('vocab_size', 'embedding_size', 'max_position_embeddings', 'type_vocab_size')
    differ = [key for key in shared if generator[key] != discriminator[key]]
    if differ:
      raise UserError(f'{where}: the generator and discriminator configs differ in '
                      f'{", ".join(differ)}; they must share these')
    config.update(generator_hidden_size=generator['hidden_size'],
                  generator_num_layers=generator['num_hidden_layers'])
    _, heads, ffn, _ = model.generator_sizes(config)
    if (generator['num_attention_heads'], generator['intermediate_size']) != (heads, ffn):
      raise UserError(f'{where}: the generator has {generator["num_attention_heads"]} heads and '
                      f'FFN {generator["intermediate_size"]}; ours derives {heads} and {ffn} '
                      f'from its width {generator["hidden_size"]} (width / 64, 4 x width)')
  return config


def _typed(value, default, field: str, name: str, where: str):
  """`value` of config.json's `field`, checked to have the type of `default`."""
  kind = type(default)
  ok = (isinstance(value, bool) if kind is bool else isinstance(value, kind) if kind is str else
        isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool))
  if not ok:
    raise UserError(f'{where}: the {name} config has {field}={value!r}; expected a {kind.__name__}')
  return float(value) if kind is float else value


def _modernbert_fields(hf: dict, name: str, where: str) -> dict:
  """config.model's fields from one ModernBERT config.json, with ModernBertConfig's defaults."""
  missing = [theirs for theirs in _MODERNBERT_SIZES.values() if theirs not in hf]
  if missing:
    raise UserError(f'{where}: the {name} config.json lacks {", ".join(missing)}')
  fields = {ours: _typed(hf[theirs], 0, theirs, name, where)
            for ours, theirs in _MODERNBERT_SIZES.items()}
  fields.update({ours: _typed(hf.get(ours, default), default, ours, name, where)
                 for ours, default in MODERNBERT_FIELDS.items()})
  unsupported = {key: hf.get(key, supported) for key, supported in
                 (('hidden_activation', 'gelu'), ('classifier_activation', 'gelu'),
                  ('tie_word_embeddings', True)) if hf.get(key, supported) != supported}
  if fields['classifier_pooling'] not in ('cls', 'mean'):
    unsupported['classifier_pooling'] = fields['classifier_pooling']
  if hf.get('rope_scaling') is not None:
    unsupported['rope_scaling'] = hf['rope_scaling']
  rope = hf.get('rope_parameters') or {}
  if not isinstance(rope, dict) or not set(rope) <= set(_THETAS):
    raise UserError(f'{where}: the {name} config\'s rope_parameters {rope!r} are not keyed by '
                    f'{" and ".join(_THETAS)}')
  for kind, (ours, default) in _THETAS.items():
    params = rope.get(kind) or {}
    if not isinstance(params, dict):
      raise UserError(f'{where}: the {name} config\'s rope_parameters.{kind} is {params!r}')
    rope_type = params.get('rope_type', params.get('type', 'default'))
    if rope_type != 'default':
      unsupported[f'rope_parameters.{kind}.rope_type'] = rope_type
    fields[ours] = _typed(params.get('rope_theta', hf.get(ours, default)), default,
                          f'rope_parameters.{kind}.rope_theta', name, where)
  if unsupported:
    raise UserError(f'{where}: the {name} config has {unsupported}; only ModernBERT with GELU, '
                    'a tied decoder, unscaled RoPE and cls or mean pooling is supported')
  # transformers v5 lists each layer's kind; ours repeats one global layer every n layers.
  layers, period = fields['num_layers'], fields['global_attn_every_n_layers']
  if period < 1:
    raise UserError(f'{where}: the {name} config has global_attn_every_n_layers={period}; it must '
                    'be positive')
  kinds = hf.get('layer_types') or _layer_types(period, layers)
  full = [i for i, kind in enumerate(kinds) if kind == 'full_attention']
  if len(full) > 1:
    period = full[1]
  elif period < layers:  # Only layer 0 is global: any period from the depth on says so.
    period = layers
  if kinds != _layer_types(period, layers):
    raise UserError(f'{where}: the {name} config\'s layer_types {kinds} do not repeat one global '
                    'layer every n layers from layer 0 (global_attn_every_n_layers) for '
                    f'num_hidden_layers={layers}, the only pattern supported')
  fields['global_attn_every_n_layers'] = period
  return fields


def _layer_types(period: int, layers: int) -> list[str]:
  return ['sliding_attention' if i % period else 'full_attention' for i in range(layers)]


def _from_modernbert(base, discriminator: dict, generator: dict | None,
                     where: str) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(base.to_dict())
  config.architecture = 'modernbert'
  config.update(_modernbert_fields(discriminator, 'discriminator', where))
  if generator is not None:
    if generator.get('model_type') != 'modernbert':
      raise UserError(f'{where}: the generator is not a ModernBERT model (model_type '
                      f'{generator.get("model_type")!r}) while the discriminator is')
    theirs = _modernbert_fields(generator, 'generator', where)
    differ = [key for key, value in theirs.items()
              if key not in ('num_layers', 'global_attn_every_n_layers') and value != config[key]]
    if _layer_types(theirs['global_attn_every_n_layers'], theirs['num_layers']) != _layer_types(
        config.global_attn_every_n_layers, theirs['num_layers']):
      differ.append('layer_types')
    if differ:
      raise UserError(f'{where}: the generator and discriminator configs differ in '
                      f'{", ".join(differ)}; a ModernBERT generator differs in depth only')
    config.generator_num_layers = theirs['num_layers']
  return config
