"""FasterSeg's auxiliary heads at 1/16 and 1/32 around a :class:`FasterSegNet`, for retraining.

Their loss is added with weight 0.2 each during training; in eval mode the wrapper returns exactly the
main logits of the wrapped network (see :class:`~segnas.nn.heads.WithAuxHeads`).
"""

from __future__ import annotations

from torch import Tensor, nn

from segnas.nn import WithAuxHeads
from segnas.spaces.fasterseg.network import FasterSegNet
from segnas.spaces.fasterseg.network import Head as FasterSegHead


class FasterSegWithAux(WithAuxHeads):
    """A :class:`FasterSegNet` (built without its own aux heads) plus FasterSeg's 1/16 and 1/32 heads.

    Training mode returns ``(logits, [aux16_logits, aux32_logits])`` (at the input size); eval mode returns
    the logits only, identical to ``self.net(x)``.
    """

    def __init__(self, net: FasterSegNet, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.aux = nn.ModuleList(FasterSegHead(c, num_classes) for c in net.aux_channels())

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        if not self.training:
            return self.net(x)
        feats = self.net.branch_features(x)
        size = x.shape[-2:]
        return self.net.main_logits(feats, size), self.net.aux_logits(feats, self.aux, size)
