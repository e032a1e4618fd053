"""What a second of audio costs an MDX-Net model, counted by ``vsep_core.cost`` on a torch twin of its graph.

UVR's MDX-Net ONNX files are KUIELab ConvTDFNets (a U-Net of TDF-conv blocks on [batch, 4, dim_f,
dim_t] spectrograms). The twin here has the file's layout, read from its graph: growth (channels
of the first convolution), blocks (transposed convolutions), convolutions per block, the TDF
bottleneck factor and dim_f; the weights are never loaded. Chunks per second follow from the
params (hop length, segment size, overlap, batch size, denoise) as ``vsep_mdx.model`` cuts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsep_core.api import CostPass, LoadContext
from vsep_core.errors import ModelLoadError

SAMPLE_RATE = 44100
#: KUIELab's defaults, used where the graph does not say
DEFAULT_LAYOUT = {"dim_f": 3072, "blocks": 5, "convs": 3, "growth": 32, "bottleneck": 8, "conv_bn": 0}


def read_layout(path: Path) -> dict[str, int]:
    """The ConvTDFNet layout of an MDX-Net ONNX file (see the module docstring)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    layout = dict(DEFAULT_LAYOUT)
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].dim_value:
        layout["dim_f"] = int(dims[2].dim_value)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    ups = [n for n in graph.node if n.op_type == "ConvTranspose"]
    if not convs or not ups:  # not a ConvTDFNet: its cost is unknown, never the default layout's
        raise ModelLoadError(f"{path.name}: the ONNX graph is not a ConvTDFNet (no convolutions), cost unknown")
    if convs and len(convs[0].input) > 1 and convs[0].input[1] in shapes:
        layout["growth"] = int(shapes[convs[0].input[1]][0])
    # exporters fold a convolution's BatchNorm into it: the twin keeps only the BatchNorms the graph has
    layout["conv_bn"] = int(sum(n.op_type == "BatchNormalization" for n in graph.node) >= len(convs) + len(ups) > 0)
    if ups:
        blocks = len(ups)
        per_block = (len(convs) - 2 - blocks) / (2 * blocks + 1)  # first + final conv, one down-conv per block
        layout["blocks"] = blocks
        if per_block == int(per_block) and per_block > 0:
            layout["convs"] = int(per_block)
    for node in graph.node:  # the first TDF linear: [dim_f, dim_f // bottleneck]
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in shapes:
            shape = shapes[node.input[1]]
            if len(shape) == 2 and layout["dim_f"] in shape and min(shape) > 0:
                layout["bottleneck"] = max(1, layout["dim_f"] // min(shape))
                break
    return layout


def convtdf_net(layout: dict[str, int]) -> Any:
    """A torch ConvTDFNet of `layout` (the twin whose passes core counts). Its ReLUs are in place: ONNX
    Runtime fuses them into the convolution before them, so they move no memory of their own."""
    from torch import nn

    g, n_convs, bn = layout["growth"], layout["convs"], layout["bottleneck"]

    def conv_bn(c_in: int, c_out: int, k: int, s: int, p: int = 0, up: bool = False) -> list[nn.Module]:
        conv = (nn.ConvTranspose2d if up else nn.Conv2d)(c_in, c_out, k, s, p)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if layout["conv_bn"] else \
            [conv, nn.ReLU(inplace=True)]

    class TDFBlock(nn.Module):
        def __init__(self, c: int, f: int) -> None:
            super().__init__()
            self.convs = nn.Sequential(*[m for _ in range(n_convs) for m in conv_bn(c, c, 3, 1, 1)])
            self.tdf = nn.Sequential(nn.Linear(f, f // bn, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     nn.Linear(f // bn, f, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))

        def forward(self, x: Any) -> Any:
            x = self.convs(x)
            return x + self.tdf(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Sequential(*conv_bn(4, g, 1, 1))
            f, c = layout["dim_f"], g
            self.enc, self.down, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            for _ in range(layout["blocks"]):
                self.enc.append(TDFBlock(c, f))
                self.down.append(nn.Sequential(*conv_bn(c, c + g, 2, 2)))
                f, c = f // 2, c + g
            self.mid = TDFBlock(c, f)
            for _ in range(layout["blocks"]):
                self.up.append(nn.Sequential(*conv_bn(c, c - g, 2, 2, up=True)))
                f, c = f * 2, c - g
                self.dec.append(TDFBlock(c, f))
            self.final = nn.Conv2d(c, 4, 1)

        def forward(self, x: Any) -> Any:
            x = self.first(x).transpose(-1, -2)
            skips = []
            for enc, down in zip(self.enc, self.down, strict=True):
                x = enc(x)
                skips.append(x)
                x = down(x)
            x = self.mid(x)
            for up, dec in zip(self.up, self.dec, strict=True):
                x = dec(up(x) * skips.pop())
            return self.final(x.transpose(-1, -2))

    return Net().eval()


def cost_passes(ctx: LoadContext) -> list[CostPass]:
    """One ConvTDFNet pass on [batch, 4, dim_f, segment_size] per (1 - overlap) chunk of audio."""
    if not ctx.model_path.is_file():
        raise ModelLoadError(f"{ctx.model_path.name}: an MDX-Net model is counted from its .onnx file")
    layout = read_layout(ctx.model_path)
    p = ctx.params
    chunk = p.hop_length * (p.segment_size - 1)
    step = max(1, int(chunk * (1 - p.overlap)))
    rate = SAMPLE_RATE / step / p.batch_size * (2 if p.enable_denoise else 1)
    return [CostPass(build=lambda: convtdf_net(layout), input_shapes=((p.batch_size, 4, layout["dim_f"],
                                                                      p.segment_size),), passes_per_second=rate)]


def calibration_passes() -> list[CostPass]:
    """KUIELab's ConvTDFNet (Inst HQ layout) on a 32-frame segment."""
    return [CostPass(build=lambda: convtdf_net(DEFAULT_LAYOUT), input_shapes=((1, 4, DEFAULT_LAYOUT["dim_f"], 32),),
                     passes_per_second=1.0)]
