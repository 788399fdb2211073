"""A readable console: no Lightning tips nor deprecation warnings a user can do nothing about
(:func:`quiet_console`) and, when one run trains many networks (``correlate``, ``ablate``,
``score=standalone``), Lightning's banners ("GPU available", "`Trainer.fit` stopped") once per process, not
once per network (:func:`lightning_banners_once`)."""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGER = "lightning.pytorch.utilities.rank_zero"  # where Lightning's rank-zero messages come from
TIP = "💡 Tip:"  # how Lightning's advertisements start


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


class NoTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TIP)


def _add_filter(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


def quiet_console() -> None:
    """From now on, no Lightning tips, no warning about Lightning's own use of a deprecated torch pytree API and
    each Lightning message printed once (Lightning imported after Hydra set up logging keeps its own handler and
    would also propagate to Hydra's)."""
    _add_filter(logging.getLogger(LIGHTNING_LOGGER), NoTips)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    lightning = logging.getLogger("lightning")
    if lightning.handlers:  # Lightning prints its messages itself: not a second time through Hydra's handlers
        lightning.propagate = False


def lightning_banners_once() -> None:
    """From now on, show each Lightning rank-zero message once (and what :func:`quiet_console` leaves)."""
    _add_filter(logging.getLogger(LIGHTNING_LOGGER), OncePerMessage)
    quiet_console()
