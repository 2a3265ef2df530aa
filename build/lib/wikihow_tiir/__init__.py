"""wikihow-tiir: build the wikiHow-TIIR interleaved retrieval benchmark and score models on it."""

__version__ = "0.1.0"
