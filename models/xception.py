"""Xception (Chollet 2017), laid out as timm's port of the Keras model.

Keys as timm's ``xception``: ``conv1``/``bn1``, ``conv2``/``bn2``, ``block1``
... ``block12`` (each with ``rep`` and, where the shape changes,
``skip``/``skipbn``), ``conv3``/``bn3``, ``conv4``/``bn4``, ``fc``.  A
separable convolution's depthwise part is ``conv1``, its 1x1 part
``pointwise``.  The ``rep`` Sequential keeps timm's parameterless ReLUs, so
the numbered keys (``block2.rep.1.conv1.weight``) line up.  At inference
each convolution runs with its BatchNorm (and ReLU) folded in
(``tinycnn.nn.fusion``: the ``rep`` Sequential's runs, and the chains each
module names in ``fuse_chains``).
"""

from tinycnn import nn

from ._common import check_input, check_se_reduction, init_weights
from .registry import register_model
from .se import SEModule


class Block(nn.Module):
    """``reps`` x (ReLU, 3x3 separable convolution, BN), then a 3x3 max-pool
    when strided; a shortcut that is the identity or, when the width or
    resolution changes, a strided 1x1 convolution + BN.

    ``grow_first``: the first separable convolution changes the width (else
    the last does).  ``start_with_relu=False`` drops the leading ReLU (the
    first block follows a ReLU already).  ``se_reduction``: a
    squeeze-and-excitation unit on the branch's output (after its last BN
    and the max-pool), before the addition.
    """

    fuse_chains = (("skip", "skipbn"),)

    def __init__(self, in_channels, out_channels, reps, stride=1, start_with_relu=True, grow_first=True,
                 se_reduction=None):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = None

        rep = []
        for i in range(reps):
            if grow_first:
                inc = in_channels if i == 0 else out_channels
                outc = out_channels
            else:
                inc = in_channels
                outc = in_channels if i < reps - 1 else out_channels
            rep += [nn.ReLU(), nn.SeparableConv2d(inc, outc, 3, stride=1, padding=1), nn.BatchNorm2d(outc)]
        if not start_with_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*rep)
        self.se = SEModule(out_channels, se_reduction) if se_reduction else None

    def forward(self, inp):
        x = self.rep(inp)
        if self.se is not None:
            x = self.se(x)

        if self.skip is not None:
            identity = self.skipbn(self.skip(inp))
        else:
            identity = inp

        x = x + identity
        return x

    def zero_init_last(self):
        """Zero the branch's last BN gamma: the block starts as its shortcut."""
        last_bn = [m for m in self.rep if isinstance(m, nn.BatchNorm2d)][-1]
        nn.init.zeros_(last_bn.weight)


class Xception(nn.Module):
    """Entry flow (a two-convolution stem and strided blocks), a middle flow
    of ``middle_blocks`` identical blocks, an exit flow (one strided block,
    two separable convolutions), global average pooling and a dense layer.

    ``stem_widths``: the two stem convolutions; ``entry_widths``: the three
    entry blocks; ``exit_widths``: the exit block and the two separable
    convolutions.  The blocks are ``block1`` ... ``block{4 + middle_blocks}``.
    ``stem='imagenet'``: timm's stem (3x3 stride 2 then 3x3, both unpadded;
    299x299 ends at 10x10).  ``stem='cifar'``: both 3x3 convolutions at
    stride 1 with padding 1, for 28-64 px images (32x32 ends at 2x2).
    ``se``: a squeeze-and-excitation unit in every block;
    ``zero_init_residual``: zero every block's last BN gamma.
    """

    fuse_chains = (("conv1", "bn1", "act1"), ("conv2", "bn2", "act2"), ("conv3", "bn3", "act3"),
                   ("conv4", "bn4", "act4"))

    def __init__(self, num_classes=1000, in_chans=3, stem="imagenet", stem_widths=(32, 64),
                 entry_widths=(128, 256, 728), middle_blocks=8, exit_widths=(1024, 1536, 2048),
                 se=False, se_reduction=16, zero_init_residual=False):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"Xception: stem must be 'imagenet' or 'cifar', got {stem!r}")
        for name, widths, n in (("stem_widths", stem_widths, 2), ("entry_widths", entry_widths, 3),
                                ("exit_widths", exit_widths, 3)):
            if len(widths) != n:
                raise ValueError(f"Xception: {name} must have {n} entries, got {list(widths)}")
        self.num_classes, self.in_chans, self.stem = num_classes, in_chans, stem
        se_reduction = check_se_reduction("Xception", se, se_reduction)
        stride, padding = (2, 0) if stem == "imagenet" else (1, 1)

        self.conv1 = nn.Conv2d(in_chans, stem_widths[0], 3, stride=stride, padding=padding, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_widths[0])
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(stem_widths[0], stem_widths[1], 3, padding=padding, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_widths[1])
        self.act2 = nn.ReLU()

        e1, e2, e3 = entry_widths
        blocks = [Block(stem_widths[1], e1, 2, 2, start_with_relu=False, se_reduction=se_reduction),
                  Block(e1, e2, 2, 2, se_reduction=se_reduction),
                  Block(e2, e3, 2, 2, se_reduction=se_reduction)]
        blocks += [Block(e3, e3, 3, 1, se_reduction=se_reduction) for _ in range(middle_blocks)]
        blocks += [Block(e3, exit_widths[0], 2, 2, grow_first=False, se_reduction=se_reduction)]
        self.block_names = []
        for i, block in enumerate(blocks):
            self.add_module(f"block{i + 1}", block)
            self.block_names.append(f"block{i + 1}")

        self.conv3 = nn.SeparableConv2d(exit_widths[0], exit_widths[1], 3, stride=1, padding=1)
        self.bn3 = nn.BatchNorm2d(exit_widths[1])
        self.act3 = nn.ReLU()
        self.conv4 = nn.SeparableConv2d(exit_widths[1], exit_widths[2], 3, stride=1, padding=1)
        self.bn4 = nn.BatchNorm2d(exit_widths[2])
        self.act4 = nn.ReLU()

        self.num_features = exit_widths[2]
        self.global_pool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(self.num_features, num_classes)

        init_weights(self)
        if zero_init_residual:
            for block in blocks:
                block.zero_init_last()

    def forward_features(self, x):
        """(N, H, W, in_chans) -> the exit flow's maps (N, h, w, num_features)."""
        check_input(self, x, self.in_chans)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        for name in self.block_names:
            x = getattr(self, name)(x)
        x = self.act3(self.bn3(self.conv3(x)))
        x = self.act4(self.bn4(self.conv4(x)))
        return x

    def forward_head(self, x):
        """Feature maps -> logits (N, num_classes)."""
        x = self.global_pool(x)
        return self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@register_model
def xception(**kwargs):
    """Xception as timm's ``xception``: 22,855,952 parameters at 1000 classes; 299x299 input."""
    return Xception(**kwargs)


@register_model
def xception_small(**kwargs):
    """A small Xception for 28-64 px images: stem='cifar' (stride-1 3x3
    convolutions of 16 and 32 maps), entry blocks of 64/128/256, 4 middle
    blocks of 256, exit block 384, separable convolutions 512 and 768 (32x32
    input ends at 2x2).  1,883,066 parameters at 10 classes."""
    return Xception(stem="cifar", stem_widths=(16, 32), entry_widths=(64, 128, 256), middle_blocks=4,
                    exit_widths=(384, 512, 768), **kwargs)
