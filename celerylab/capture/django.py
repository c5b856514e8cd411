"""Producer capture for a Django project, switched on by a setting.

Add ``"celerylab.capture.django.CelerylabCapture"`` to ``INSTALLED_APPS`` and set, for example::

    CELERYLAB = {"producer": True, "dir": "/var/tmp/celerylab", "sample": 0.01, "run": GIT_SHA}

(keys as the ``CELERYLAB_*`` environment variables without their prefix; the environment fills what the setting
leaves out).  Every ``delay``/``apply_async``/``send_task`` the web process makes is then sampled and profiled, and
every message carries the timing header.  A bad setting is logged; the project starts anyway.
"""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings

from . import _config
from ._producer import install_producer

logger = logging.getLogger("celerylab.capture")


class CelerylabCapture(AppConfig):
    name = "celerylab.capture.django"
    label = "celerylab_capture"
    verbose_name = "celerylab capture"

    def ready(self) -> None:
        try:
            conf = _config.producer_settings(getattr(settings, "CELERYLAB", None) or {})
            if conf:
                install_producer(**conf)
        except Exception as e:
            logger.warning("celerylab capture: producer capture not installed: %s", e)
