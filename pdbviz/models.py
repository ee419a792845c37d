"""A small model zoo for quantization experiments.

Every model takes images ``(n, C, H, W)`` (the MLP also takes feature
vectors ``(n, d)``) and returns logits. BatchNorm follows every convolution.
Each model carries a ``ModelInfo`` in ``model.pdbviz_info`` (the protocol of
``pdbviz.quant.model_info``): its input shape (so pdbviz finds the forward
order and the MACs without an example input), its stages (one per layer,
except ResNet-20's stem, three residual stages and head, so that ``"8-4-2-1"``
halves per stage as in the thesis, and the ViT's patch embedding, blocks and
head, so that it halves per block), and how it was built (checkpoints rebuild
it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import did_you_mean
from .quant.protocol import ModelInfo

#: every name ``build_model`` accepts.
MODELS = ("mlp", "lenet", "vgg-small", "resnet20", "vit")


def _c(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class MLP(nn.Module):
    """Two hidden layers with BatchNorm. Quantizable, in order: ``fc1``, ``fc2``, ``fc3``."""

    def __init__(self, input_shape, num_classes, width=1.0):
        super().__init__()
        d, h1, h2 = math.prod(input_shape), _c(256, width), _c(128, width)
        self.fc1, self.bn1 = nn.Linear(d, h1), nn.BatchNorm1d(h1)
        self.fc2, self.bn2 = nn.Linear(h1, h2), nn.BatchNorm1d(h2)
        self.fc3 = nn.Linear(h2, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.fc1(x.flatten(1))))
        x = torch.relu(self.bn2(self.fc2(x)))
        return self.fc3(x)


class LeNet(nn.Module):
    """LeNet-5 style CNN for small grey images.

    Two 5x5 convolutions (16 and 32 channels x width, padding 2) with
    BatchNorm, ReLU and 2x2 max pooling where the map is large enough, then
    three fully-connected layers (120, 84, classes). Quantizable, in order:
    ``conv1``, ``conv2``, ``fc1``, ``fc2``, ``fc3``.
    """

    def __init__(self, input_shape, num_classes, width=1.0):
        super().__init__()
        c, h, w = input_shape
        c1, c2 = _c(16, width), _c(32, width)
        self.conv1, self.bn1 = nn.Conv2d(c, c1, 5, padding=2, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 5, padding=2, bias=False), nn.BatchNorm2d(c2)
        self.pool1 = nn.MaxPool2d(2) if min(h, w) >= 4 else nn.Identity()
        h, w = (h // 2, w // 2) if min(h, w) >= 4 else (h, w)
        self.pool2 = nn.MaxPool2d(2) if min(h, w) >= 4 else nn.Identity()
        h, w = (h // 2, w // 2) if min(h, w) >= 4 else (h, w)
        f1, f2 = _c(120, width), _c(84, width)
        self.fc1, self.bn3 = nn.Linear(c2 * h * w, f1), nn.BatchNorm1d(f1)
        self.fc2, self.bn4 = nn.Linear(f1, f2), nn.BatchNorm1d(f2)
        self.fc3 = nn.Linear(f2, num_classes)

    def forward(self, x):
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        x = torch.relu(self.bn3(self.fc1(x.flatten(1))))
        x = torch.relu(self.bn4(self.fc2(x)))
        return self.fc3(x)


class VGGSmall(nn.Module):
    """The CIFAR "VGG-Small" of the quantization literature (DoReFa-Net, LQ-Nets).

    Six 3x3 convolutions (128, 128, 256, 256, 512, 512 channels x width) with
    BatchNorm and ReLU, 2x2 max pooling after every second one, then
    ``fc1`` (to 1024 x width) and ``fc2``. At width 1 on 32x32 RGB it has the
    parameter counts METHOD.md lists (conv1 3,456; conv2 147,456; ...).
    Quantizable, in order: ``conv1`` .. ``conv6``, ``fc1``, ``fc2``.
    """

    def __init__(self, input_shape, num_classes, width=1.0):
        super().__init__()
        c, h, w = input_shape
        chans = [_c(v, width) for v in (128, 128, 256, 256, 512, 512)]
        prev = c
        for i, ch in enumerate(chans, 1):
            setattr(self, f"conv{i}", nn.Conv2d(prev, ch, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(ch))
            prev = ch
        self.pools = []
        for _ in range(3):
            can = min(h, w) >= 2
            self.pools.append(can)
            h, w = (h // 2, w // 2) if can else (h, w)
        self.fc1, self.bn7 = nn.Linear(prev * h * w, _c(1024, width)), nn.BatchNorm1d(_c(1024, width))
        self.fc2 = nn.Linear(_c(1024, width), num_classes)

    def forward(self, x):
        for i in range(1, 7):
            x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i % 2 == 0 and self.pools[i // 2 - 1]:
                x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.bn7(self.fc1(x.flatten(1))))
        return self.fc2(x)


class BasicBlock(nn.Module):
    """The residual block of ResNet-20: two 3x3 convolutions with BatchNorm, and a 1x1 projection shortcut
    when the stride or the width changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (He et al. 2016): a stem, three stages of three basic blocks
    (16, 32, 64 channels x width; ``width=4`` is the "x4 wide" ResNet-20), global
    average pooling and ``fc``. Downsampling shortcuts are 1x1 convolutions.

    Quantizable, in order: ``conv1``; per block ``stageS.B.conv1``,
    ``stageS.B.conv2`` (and ``stageS.0.shortcut.0`` after them where the stage
    downsamples); ``fc``. Its ``pdbviz_info`` declares the stem, the three stages and the head as stages.
    """

    def __init__(self, input_shape, num_classes, width=1.0):
        super().__init__()
        c = input_shape[0]
        widths = [_c(v, width) for v in (16, 32, 64)]
        self.conv1, self.bn1 = nn.Conv2d(c, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0])
        prev = widths[0]
        for s, ch in enumerate(widths, 1):
            blocks = []
            for b in range(3):
                blocks.append(BasicBlock(prev, ch, 2 if (b == 0 and s > 1) else 1))
                prev = ch
            setattr(self, f"stage{s}", nn.Sequential(*blocks))
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    """Multi-head self-attention with its two weights as plain ``nn.Linear`` layers (``qkv``, ``proj``), so that
    a bit schedule reaches them."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class MLPBlock(nn.Module):
    """The transformer's feed-forward part: ``fc1``, GELU, ``fc2``."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), MLPBlock(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A tiny Vision Transformer (Dosovitskiy et al. 2021) for small images, trainable on a CPU in seconds.

    The image is cut into a 4x4 grid of patches (patch side ``min(H, W) // 4``,
    at least 1) by ``patch``, a convolution whose kernel and stride are the
    patch side, to 32 x width features; a class token and a learned position
    embedding are added; four pre-norm blocks of two-head self-attention and
    an MLP (hidden size twice the width) follow; ``head`` classifies the class
    token after a final LayerNorm. Quantizable, in order: ``patch``; per block
    ``blocks.B.attn.qkv``, ``blocks.B.attn.proj``, ``blocks.B.mlp.fc1``,
    ``blocks.B.mlp.fc2``; ``head``. Its ``pdbviz_info`` declares the patch
    embedding, each block and the head as stages, so ``"8-4-2-1"`` halves the
    bits per block.
    """

    def __init__(self, input_shape, num_classes, width=1.0, depth=4, heads=2):
        super().__init__()
        c, h, w = input_shape
        dim = heads * max(1, int(round(16 * width)))
        side = max(1, min(h, w) // 4)
        self.patch = nn.Conv2d(c, dim, side, side)
        tokens = (h // side) * (w // side)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, 2 * dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.blocks(x)
        return self.head(self.norm(x[:, 0]))


_BUILDERS = {"mlp": MLP, "lenet": LeNet, "vgg-small": VGGSmall, "resnet20": ResNet20, "vit": TinyViT}


def _stages(model: nn.Module, name: str) -> dict[str, int]:
    """Stage of each weight-bearing child: ResNet-20's stem, stages and head; the ViT's patch embedding, blocks
    and head; one per layer otherwise."""
    if name == "resnet20":
        return {"conv1": 0, "stage1": 1, "stage2": 2, "stage3": 3, "fc": 4}
    if name == "vit":
        depth = len(model.blocks)
        return {"patch": 0, **{f"blocks.{b}": b + 1 for b in range(depth)}, "head": depth + 1}
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return {n: i for i, n in enumerate(layers)}


def build_model(name: str = "lenet", input_shape=(1, 8, 8), num_classes: int = 10, width: float = 1.0,
                seed: int | None = 0) -> nn.Module:
    """Build a model of the zoo.

    Args:
        name: ``"mlp"``, ``"lenet"`` (default), ``"vgg-small"``, ``"resnet20"`` or ``"vit"`` (a tiny
            Vision Transformer, four blocks).
        input_shape: ``(C, H, W)`` of one image, e.g. ``data.input_shape``; the
            MLP also takes ``(features,)`` for tabular data.
        num_classes: number of outputs.
        width: channel / unit multiplier (``resnet20`` with ``width=4`` is the x4 wide one; the ViT's
            width is 32 x ``width`` features per token).
        seed: seed of the initial weights (``None``: torch's global generator).

    Example:
        >>> m = build_model("lenet", (1, 8, 8), 10)
        >>> m(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> build_model("mlp", (30,), 2)(torch.zeros(4, 30)).shape
        torch.Size([4, 2])
        >>> vit = build_model("vit", (1, 8, 8), 10)
        >>> vit(torch.zeros(2, 1, 8, 8)).shape, vit.pdbviz_info.stage_of("blocks.2.mlp.fc1")
        (torch.Size([2, 10]), 3)
    """
    if not isinstance(name, str) or name.lower() not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; available: {', '.join(MODELS)}.{did_you_mean(name, MODELS)}")
    name = name.lower()
    allowed = "(features,) or (channels, height, width)" if name == "mlp" else "(channels, height, width)"
    try:
        input_shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be {allowed}, got {input_shape!r}") from None
    if len(input_shape) not in ((1, 3) if name == "mlp" else (3,)) or min(input_shape) < 1:
        hint = "; for tabular data use the 'mlp' model" if len(input_shape) == 1 else ""
        raise ValueError(f"input_shape must be {allowed} of positive sizes for {name!r}, got {input_shape!r}{hint}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 16:
        raise ValueError(f"width must be a number in (0, 16], got {width!r}")
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _BUILDERS[name](input_shape, num_classes, width)
    else:
        model = _BUILDERS[name](input_shape, num_classes, width)
    model.pdbviz_info = ModelInfo(input_shape=input_shape, stages=_stages(model, name),
                                  config={"name": name, "input_shape": list(input_shape),
                                          "num_classes": num_classes, "width": width})
    return model
