"""A realistic demo Celery app and the generator of the shipped ``sample_profiles/``.

* :mod:`celerylab.demo.app` — the Celery app (``celery -A celerylab.demo.app worker``); its tasks live in
  :mod:`~celerylab.demo.orders`, :mod:`~celerylab.demo.reports`, :mod:`~celerylab.demo.thumbnails`,
  :mod:`~celerylab.demo.campaigns`, :mod:`~celerylab.demo.analytics`, :mod:`~celerylab.demo.partners`,
  :mod:`~celerylab.demo.batch` and :mod:`~celerylab.demo.imports`.
* :mod:`celerylab.demo.settings` — configuration from ``CELERYLAB_DEMO_*`` environment variables, including the
  *variant* (``baseline`` or ``candidate``) that switches the planted regressions on.
* :mod:`celerylab.demo.manifest` — what was planted (``sample_profiles/manifest.json``) and its validator.
* :mod:`celerylab.demo.generate` — ``celerylab generate-samples OUT``: real workers, real broker, real database.

Nothing here is imported by ``import celerylab``.
"""
