"""Networks: :func:`build_network` for a genotype of any registered space (the space packages of
:mod:`segnas.spaces` hold their networks), and the models outside the search spaces (DeepLab,
Panoptic-DeepLab on a HyCTAS backbone)."""

from segnas.models.factory import build_network, deploy_net, inline_genotype

__all__ = ["build_network", "deploy_net", "inline_genotype"]
