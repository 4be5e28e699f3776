"""PyTorch builds of the architectures retort implements, for the parity fixtures and
check_student.py.

* cifar_resnet(depth, widths): RepDistiller's CIFAR ResNet (models/resnet.py there), written
  out plainly: 3x3 stem, three stages of BasicBlocks, 1x1-conv + BN shortcut where the shape
  changes, AvgPool2d(8) (global on 32x32 inputs), fc. Same parameter names as retort.
* wide_resnet(depth, k): RepDistiller's Wide ResNet (models/wrn.py there), pre-activation
  blocks, same parameter names as retort (block1.layer.0.convShortcut, ...).
* small_torchvision_resnet(block, layers, widths): torchvision's own ResNet class, blocks,
  _make_layer and forward, with the stage widths reduced so the fixtures stay small
  (torchvision hard-codes 64-128-256-512; only __init__ is redone here).
* torchvision_resnet(name): the real resnet18 / resnet34 / resnet50 (check_student.py).
* timm_vit(...): timm's own VisionTransformer (class token, pre-norm, LayerNorm eps 1e-6,
  exact GELU, qkv bias).
* build(arch, ...): the PyTorch model for a retort registry name (check_student.py).
"""
import re

import torch
import torch.nn as nn


# ---------------------------------------------------------------- RepDistiller CIFAR ResNet
def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class CifarBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out = out + residual
        return torch.relu(out)


class CifarResNet(nn.Module):
    """RepDistiller ResNet: depth 6n+2, num_filters [stem, stage1, stage2, stage3]."""

    def __init__(self, depth, num_filters, num_classes=10, in_channels=3, pool=8):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n+2"
        n = (depth - 2) // 6
        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(in_channels, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(num_filters[1], n)
        self.layer2 = self._make_layer(num_filters[2], n, stride=2)
        self.layer3 = self._make_layer(num_filters[3], n, stride=2)
        # RepDistiller uses AvgPool2d(8) for 32x32 inputs; pool=None gives global average
        # pooling (what retort does for any input size, e.g. 28x28 Fashion-MNIST).
        self.avgpool = nn.AvgPool2d(pool) if pool else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_filters[3] * CifarBasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * CifarBasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * CifarBasicBlock.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * CifarBasicBlock.expansion),
            )
        layers = [CifarBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * CifarBasicBlock.expansion
        for _ in range(1, blocks):
            layers.append(CifarBasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


def cifar_resnet(depth, widths=(16, 16, 32, 64), num_classes=10, in_channels=3, pool=8):
    return CifarResNet(depth, list(widths), num_classes, in_channels, pool)


# ---------------------------------------------------------------- RepDistiller Wide ResNet
class WideBasicBlock(nn.Module):
    """RepDistiller wrn.py BasicBlock: pre-activation, the projection reads the activated input."""

    def __init__(self, in_planes, out_planes, stride, drop_rate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = drop_rate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = None if self.equalInOut else nn.Conv2d(in_planes, out_planes, kernel_size=1,
                                                                   stride=stride, padding=0, bias=False)

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.droprate > 0:
            out = nn.functional.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, stride, drop_rate=0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(nb_layers)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """RepDistiller wrn.py: depth 6n+4, widths 16, 16k, 32k, 64k."""

    def __init__(self, depth, widen_factor, num_classes=10, in_channels=3, drop_rate=0.0, pool=8):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert (depth - 4) % 6 == 0, "depth must be 6n+4"
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, ch[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.pool = pool  # RepDistiller: F.avg_pool2d(out, 8); None = global (retort, any size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = nn.functional.avg_pool2d(out, self.pool) if self.pool else out.mean((2, 3), keepdim=True)
        return self.fc(out.view(out.size(0), -1))


def wide_resnet(depth, widen_factor, num_classes=10, in_channels=3, pool=8):
    return WideResNet(depth, widen_factor, num_classes, in_channels, 0.0, pool)


# ---------------------------------------------------------------- torchvision ResNet
def small_torchvision_resnet(block_name, layers, widths, stem_width, num_classes=10, in_channels=3):
    """torchvision.models.resnet.ResNet with reduced widths: torchvision's BasicBlock /
    Bottleneck, _make_layer and forward; only the hard-coded 64..512 widths are replaced."""
    from torchvision.models import resnet as tvr

    block = {"basic": tvr.BasicBlock, "bottleneck": tvr.Bottleneck}[block_name]

    class SmallResNet(tvr.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = stem_width
            self.dilation = 1
            self.groups = 1
            self.base_width = 64  # Bottleneck width = planes, as in resnet50
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, widths[0], layers[0])
            self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
            self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
            self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    return SmallResNet()


def torchvision_resnet(name, num_classes=10, in_channels=3):
    import torchvision

    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


# ---------------------------------------------------------------- timm ViT
def timm_vit(img_size, patch_size, embed_dim, depth, num_heads, num_classes=10, in_chans=3):
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                             depth=depth, num_heads=num_heads, mlp_ratio=4.0, qkv_bias=True, num_classes=num_classes,
                             global_pool="token", class_token=True)


# ---------------------------------------------------------------- by retort registry name
VIT_SIZES = {"vit_tiny": (192, 3), "vit_small": (384, 6), "vit_base": (768, 12)}
CIFAR_DEPTHS = {8, 14, 20, 32, 44, 56, 110}


def build(arch, num_classes=10, in_channels=1, image_size=28, patch_size=0, depth=0):
    """The PyTorch model for retort's `arch` with retort's ModelConfig defaults: CIFAR ResNets
    pool globally (so 28x28 works), ViT patch 4 below 128 px else 16, 12 blocks."""
    m = re.fullmatch(r"resnet(\d+)(x4)?", arch)
    if m and int(m.group(1)) in CIFAR_DEPTHS:
        widths = (32, 64, 128, 256) if m.group(2) else (16, 16, 32, 64)
        return cifar_resnet(int(m.group(1)), widths, num_classes, in_channels, pool=None)
    if arch in ("resnet18", "resnet34", "resnet50"):
        return torchvision_resnet(arch, num_classes, in_channels)
    m = re.fullmatch(r"(vit_tiny|vit_small|vit_base)(?:_patch(\d+)_(\d+))?", arch)
    if m:
        dim, heads = VIT_SIZES[m.group(1)]
        if m.group(2):
            patch_size, image_size = int(m.group(2)), int(m.group(3))
        patch = patch_size or (16 if image_size >= 128 else 4)
        return timm_vit(image_size, patch, dim, depth or 12, heads, num_classes, in_channels)
    m = re.fullmatch(r"wrn_(\d+)_(\d+)", arch)
    if m:
        return wide_resnet(int(m.group(1)), int(m.group(2)), num_classes, in_channels, pool=None)
    raise SystemExit(f"check_student: no PyTorch build for arch '{arch}'")
