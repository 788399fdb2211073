"""A readable console when one run trains many networks (``correlate``, ``ablate``, ``score=standalone``):
Lightning's banners ("GPU available", tips, "`Trainer.fit` stopped") once per process, not once per network."""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGER = "lightning.pytorch.utilities.rank_zero"  # where Lightning's rank-zero messages come from


class OncePerMessage(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def lightning_banners_once() -> None:
    """From now on, show each Lightning rank-zero message once, and not Lightning's own use of a deprecated
    torch pytree API (a warning a user can do nothing about)."""
    logger = logging.getLogger(LIGHTNING_LOGGER)
    if not any(isinstance(f, OncePerMessage) for f in logger.filters):
        logger.addFilter(OncePerMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
