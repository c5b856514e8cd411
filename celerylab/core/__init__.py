"""The analysis core: pandas only, no plotting, widgets or celery.

* :mod:`.decode` — one pstats file (marshal, optionally gzip) -> numpy columns, with the reason when it cannot;
* :mod:`.sources` — which files a source names; sidecars; :mod:`.names` — task name/id from file names;
* :mod:`.parse` — many files in worker processes -> global columns; :mod:`.cache` — the cache (memory-mapped Arrow);
* :mod:`.frames` — the ``profiles``/``functions``/``sql``/``allocations`` frames; user metadata;
* :mod:`.classify` — module and kind of each function; :mod:`.rules` — the data rules every layer shares;
* :mod:`.data` — :class:`~.data.ProfileData`, the frames and their exact aggregations; :mod:`.load` — ``load()``;
* :mod:`.samples` — where the shipped sample profiles are.

Nothing is imported here, so ``import celerylab`` (which needs :func:`.samples.sample_profiles`) stays light.
"""
