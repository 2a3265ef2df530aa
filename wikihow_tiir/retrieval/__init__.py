"""What scoring a retrieval model on wikiHow-TIIR needs, shared by ``evaluate`` (the harness and its
baselines) and ``mme`` (a model with a trainer), which never import each other:

* ``dataset.py``  - one split of a dataset, read lazily and checked (ours, a Hub id, the paper's layout);
* ``metrics.py``  - Recall/MRR/nDCG from explicit qrels and a run (pure, trec_eval's definitions);
* ``registry.py`` - model families that packages outside ``evaluate`` provide (``--model PREFIX:ARG``,
  e.g. ``mme:PATH``), and the options a model factory receives.

Import the module you need; this package imports nothing at start-up.
"""
