from segnas.models.hyctas_net import HyCTASNet as HyCTASNet
from segnas.models.hyctas_net import build_hyctas_net as build_hyctas_net
from segnas.models.supernet import HyCTASSupernet as HyCTASSupernet
