"""Switch producer capture on from the environment, at interpreter start-up, with no change to the app.

``celerylab run --dir DIR -- <command>`` sets ``CELERYLAB_PRODUCER=1`` (and the other ``CELERYLAB_*`` variables)
and puts a ``sitecustomize`` on ``PYTHONPATH`` that imports this module in every Python process the command
starts.  Importing it installs :func:`~celerylab.capture.install_producer` when ``CELERYLAB_PRODUCER`` is on; a bad
setting is logged and capture stays off: the process itself is never affected.
"""

from __future__ import annotations

import logging

from . import _config
from ._producer import ProducerCapture, install_producer

logger = logging.getLogger("celerylab.capture")


def start() -> ProducerCapture | None:
    """Install producer capture from ``CELERYLAB_*`` variables; ``None`` when it is off or a setting is bad."""
    try:
        conf = _config.producer_settings()
        return install_producer(**conf) if conf else None
    except Exception as e:  # never break the process that imports us
        logger.warning("celerylab capture: producer capture not installed: %s", e)
        return None


capture = start()
