"""NOT PRODUCTION: the placeholder model, random weights built offline.

When no model is configured (`VLMQ_MODEL` unset) the worker loads a tiny random-weight
checkpoint built here, so tests, demos and CPU dry runs of the benchmarks exercise the
real transformers classes without hub access. Its answers are noise (the API warns about
it, see `shared.placeholder`). Nothing here is used once a real model is configured:
`checkpoint` builds the weights, config and processor, `tokenizer` a synthetic BPE
vocabulary with the real special tokens, `chat_templates` the real prompt layouts.
"""
