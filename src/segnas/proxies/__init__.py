"""Zero-cost proxies behind one registry.

``compute(names, model, inputs, targets, loss_fn=None)`` scores a model with several proxies, sharing
one forward/backward pass among those that read activations, gradients or weights; ``available()``
lists the names. Invalid scores (not applicable, NaN/inf, errors) are NaN in ``compute`` and carry a
reason in ``evaluate``.
"""

from segnas.proxies import measures, own_pass, saswot  # noqa: F401  (registration)
from segnas.proxies.expression import load_expression_proxy, register_expression
from segnas.proxies.registry import (
    Context,
    NotApplicable,
    ProxyResult,
    ProxySpec,
    available,
    check_options,
    compute,
    evaluate,
    get,
    proxies_options,
    register,
    resolved_options,
)
from segnas.proxies.saswot import AvtRanges, calibrate, calibrate_cached

__all__ = [
    "AvtRanges",
    "Context",
    "NotApplicable",
    "ProxyResult",
    "ProxySpec",
    "available",
    "calibrate",
    "calibrate_cached",
    "check_options",
    "compute",
    "evaluate",
    "get",
    "load_expression_proxy",
    "proxies_options",
    "register",
    "register_expression",
    "resolved_options",
]
