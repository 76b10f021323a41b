"""Independent PyTorch reference for a nasfleet CNN architecture JSON.

Builds the network with plain torch.nn following the paper's three rules
(a layer with no input takes the image; unconsumed outputs are concatenated
at the end; inputs of different spatial size are zero-padded bottom/right to
the largest before concatenation), conv(no bias) -> BN -> ReLU per layer,
optional 2x2/2 ceil-mode max-pool after the listed layers, global average
pooling and a linear classifier. Prints per-layer shapes and parameter counts
as JSON; the Rust golden tests (crates/nasfleet-core/tests/golden.rs) hold the
numbers it printed. The child builder of the torch crate must agree too.

Usage: python cnn_reference.py ARCH.json [C H W CLASSES]
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def pad_cat(xs):
    h = max(x.shape[2] for x in xs)
    w = max(x.shape[3] for x in xs)
    xs = [F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2])) for x in xs]
    return torch.cat(xs, dim=1)


class Child(nn.Module):
    def __init__(self, arch, c, classes):
        super().__init__()
        self.arch = arch
        outs_c = []
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for layer in arch["layers"]:
            cin = sum(outs_c[j] for j in layer["inputs"]) if layer["inputs"] else c
            kh, kw = layer["filter_height"], layer["filter_width"]
            self.convs.append(nn.Conv2d(cin, layer["filters"], (kh, kw),
                                        stride=(layer.get("stride_height", 1), layer.get("stride_width", 1)),
                                        padding=((kh - 1) // 2, (kw - 1) // 2), bias=False))
            self.bns.append(nn.BatchNorm2d(layer["filters"]))
            outs_c.append(layer["filters"])
        consumed = {j for l in arch["layers"] for j in l["inputs"]}
        self.final = [i for i in range(len(arch["layers"])) if i not in consumed]
        self.fc = nn.Linear(sum(outs_c[i] for i in self.final), classes)
        self.trace = []

    def forward(self, x):
        outs = []
        self.trace = []
        for i, layer in enumerate(self.arch["layers"]):
            inp = pad_cat([outs[j] for j in layer["inputs"]]) if layer["inputs"] else x
            y = F.relu(self.bns[i](self.convs[i](inp)))
            conv_shape = list(y.shape[1:])
            if i in self.arch.get("max_pool_after", []):
                y = F.max_pool2d(y, 2, 2, ceil_mode=True)
            outs.append(y)
            self.trace.append({"input": list(inp.shape[1:]), "conv": conv_shape, "output": list(y.shape[1:]),
                               "params": sum(p.numel() for p in self.convs[i].parameters())
                               + sum(p.numel() for p in self.bns[i].parameters())})
        z = pad_cat([outs[i] for i in self.final])
        self.final_shape = list(z.shape[1:])
        return self.fc(z.mean(dim=(2, 3)))


def main():
    arch = json.load(open(sys.argv[1]))
    c, h, w, classes = (int(v) for v in sys.argv[2:6]) if len(sys.argv) >= 6 else (3, 32, 32, 10)
    net = Child(arch, c, classes)
    net(torch.zeros(2, c, h, w))
    print(json.dumps({
        "layers": net.trace,
        "final_inputs": net.final,
        "final_shape": net.final_shape,
        "classifier_params": sum(p.numel() for p in net.fc.parameters()),
        "params": sum(p.numel() for p in net.parameters()),
    }, indent=1))


if __name__ == "__main__":
    main()
