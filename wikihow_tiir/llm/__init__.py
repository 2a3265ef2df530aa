"""Everything that talks to a language model, shared by query generation and the filter's LLM judge.

``client``     :class:`~wikihow_tiir.llm.client.LLMClient`: one OpenAI-compatible endpoint with our
               retries, shared 429 pauses, size caps, JSON answers validated and repaired once
``errors``     :class:`GenerationError` / :class:`Invalid` (``reason`` + ``detail``): what a call fails with
``retry``      backoff and the 429 pause (the ``Retry-After`` parser is :mod:`wikihow_tiir.retry_after`)
``responses``  strict reading of bodies and of the JSON in an answer
``cache``      the SQLite request cache (a resumed build never pays twice)
``prompts``    the versioned templates of ``prompts/`` and their manifest
``usage``      tokens per work item, network counters per process

Nothing is imported here: ``openai`` loads only when a client is made.
"""
