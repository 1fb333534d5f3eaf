"""The skip hook of ``UNetSkeleton``: a ``GatedSkip`` also reads the decoder signal.

With it an Attention U-Net (Oktay et al., MIDL 2018: additive attention gates on the skips, gated by the
coarser decoder feature) is a gate module plus a three-line ``build`` call. It lives here only; it is not
registered, so ``bench list`` and ``bench run --all`` do not change.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.architectures._blocks import DecoderSignal, GatedSkip, InitMode, UNetSkeleton, count_macs
from bench.architectures.unet import UNet, double_conv


class AttentionGate(GatedSkip):
    """C -> C: ``x * sigmoid(psi(relu(theta(x) + phi(g))))`` with g the coarse decoder feature (2C channels,
    half resolution). ``theta`` brings x onto g's grid (2x2 stride 2); the coefficients go back up bilinearly."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inter = max(1, channels // 2)
        self.theta = nn.Conv2d(channels, inter, kernel_size=2, stride=2, bias=False)
        self.phi = nn.Conv2d(2 * channels, inter, kernel_size=1)
        self.psi = nn.Conv2d(inter, 1, kernel_size=1)

    def forward(self, x: Tensor, decoder: DecoderSignal) -> Tensor:
        alpha = torch.sigmoid(self.psi(F.relu(self.theta(x) + self.phi(decoder.coarse))))
        return x * F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)


class AttentionUNet(UNetSkeleton):
    """U-Net (double convs, no BN) with an ``AttentionGate`` on every skip."""

    def __init__(self, in_channels: int = 3, classes: int = 1, width: int = 4, depth: int = 3) -> None:
        super().__init__(in_channels, classes, width, depth, init="xavier_uniform")
        self.build(double_conv, AttentionGate)
        self.reset_parameters()


class RecordingSkip(GatedSkip):
    """Returns the encoder feature unchanged; records the level and the shapes it was given."""

    def __init__(self, channels: int, seen: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.seen = seen

    def forward(self, x: Tensor, decoder: DecoderSignal) -> Tensor:
        self.seen.append((decoder.level, tuple(x.shape), tuple(decoder.coarse.shape), tuple(decoder.up.shape)))
        return x


def attention_unet(**kw: int) -> AttentionUNet:
    torch.manual_seed(0)
    return AttentionUNet(**kw)


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (32, 64)])
def test_attention_unet_runs_forward_and_backward(size: tuple[int, int]) -> None:
    model = attention_unet(in_channels=1).train()
    out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)
    out.mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    gate_weights = [name for name in grads if name.endswith("phi.weight")]
    assert len(gate_weights) == 2 and all(grads[name].abs().sum() > 0 for name in gate_weights)


def test_attention_unet_parameters_and_macs_are_counted() -> None:
    gated, plain = attention_unet(), UNet(width=4, depth=3)
    gates = sum(p.numel() for m in gated.skips for p in m.parameters())
    # per gate of C channels (inter = C // 2): theta 4*C*inter, phi 2C*inter + inter, psi inter + 1
    assert gates == sum(4 * c * (c // 2) + 2 * c * (c // 2) + c // 2 + c // 2 + 1 for c in (4, 8))
    assert sum(p.numel() for p in gated.parameters()) == sum(p.numel() for p in plain.parameters()) + gates
    assert count_macs(gated, 3, 64) > count_macs(plain, 3, 64)


def test_gate_output_depends_on_the_decoder_signal() -> None:
    model = attention_unet().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        gate = model.skips[-1]  # full-resolution level
        handle = gate.register_forward_pre_hook(
            lambda _, args: (args[0], args[1]._replace(coarse=torch.zeros_like(args[1].coarse)))
        )
        blind = model(x)
        handle.remove()
        assert not torch.allclose(reference, blind)
        assert torch.equal(model(x), reference)


def test_skeleton_hands_each_level_its_decoder_signal() -> None:
    seen: list[tuple[int, ...]] = []

    class Recorded(UNetSkeleton):
        def __init__(self, init: InitMode = "xavier_uniform") -> None:
            super().__init__(3, 1, 4, 3, init)
            self.build(double_conv, lambda c: RecordingSkip(c, seen))
            self.reset_parameters()

    torch.manual_seed(0)
    recorded = Recorded().eval()
    torch.manual_seed(0)
    plain = UNet(width=4, depth=3).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(recorded(x), plain(x))  # an identity GatedSkip is the plain U-Net, same weights
    assert seen == [
        (1, (1, 8, 16, 24), (1, 16, 8, 12), (1, 8, 16, 24)),
        (0, (1, 4, 32, 48), (1, 8, 16, 24), (1, 4, 32, 48)),
    ]
