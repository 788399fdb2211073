from segnas.models.factory import BUILDERS as BUILDERS
from segnas.models.factory import build_network as build_network
from segnas.models.factory import inline_genotype as inline_genotype
from segnas.models.factory import network_options as network_options
from segnas.models.hyctas_net import HyCTASNet as HyCTASNet
from segnas.models.hyctas_net import build_hyctas_net as build_hyctas_net
from segnas.models.supernet import HyCTASSupernet as HyCTASSupernet
