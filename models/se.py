"""Squeeze-and-excitation (Hu et al. 2017), the optional slot of a residual block."""

from tinycnn import functional as F
from tinycnn import nn

from ._common import check_se_reduction


class SEModule(nn.Module):
    """Reweight each feature map by a gate computed from all of them.

    Squeeze: the global average of each map, (N, C).  Excite: dense
    C -> C // reduction with bias, ReLU, dense back to C with bias, sigmoid.
    Scale: multiply every map by its gate.  Keys ``fc1``/``fc2`` as timm's
    (timm stores them as 1x1 convolutions (out, in, 1, 1); ours are dense
    (in, out)).
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.channels = channels
        self.reduction = check_se_reduction("SEModule", True, reduction)
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x):
        N, _, _, C = x.shape
        s = F.global_avg_pool2d(x)
        s = F.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * F.reshape(s, (N, 1, 1, C))

    def extra_repr(self):
        return f"{self.channels}, reduction={self.reduction}"
