"""PyTorch eager side of the CNN training-step benchmark.

Reads the directory written by `bench_cnn_step prepare` (panel.json, x.f32,
y.i64), builds every panel architecture with plain torch.nn the way
crates/nasfleet-core/tests/golden/cnn_reference.py does (the paper's three
rules: a layer with no input takes the image; unconsumed outputs are
concatenated at the end; inputs are zero-padded bottom/right to the largest
size; conv (no bias, "same" padding) -> BN -> ReLU, optional 2x2/2 ceil-mode
max-pool, global average pooling, linear), and times warm-up + timed
training steps on that one batch: forward, cross entropy, backward,
torch.optim.SGD(lr 0.1, momentum 0.9, nesterov, weight decay 1e-4) with its
default implementation for the device. Prints one JSON line, the same shape
as the tch side's: every step's wall-clock and calling-thread CPU milliseconds.

Usage: python cnn_step_reference.py DIR [--device cpu|cuda:N] [--threads 1]
       [--warmup 3] [--steps 15] [--mixed] [--only I]
--only I times panel architecture I alone.
--mixed runs the forward pass under torch.autocast(dtype=bfloat16).
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def pad_cat(xs):
    if len(xs) == 1:
        return xs[0]
    h = max(x.shape[2] for x in xs)
    w = max(x.shape[3] for x in xs)
    xs = [x if (x.shape[2], x.shape[3]) == (h, w) else F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2])) for x in xs]
    return torch.cat(xs, dim=1)


class Child(nn.Module):
    def __init__(self, arch, c, classes):
        super().__init__()
        self.inputs = [layer["inputs"] for layer in arch["layers"]]
        self.pooled = set(arch.get("max_pool_after", []))
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

    def forward(self, x):
        outs = []
        for i, inputs in enumerate(self.inputs):
            inp = pad_cat([outs[j] for j in inputs]) if inputs else x
            y = F.relu(self.bns[i](self.convs[i](inp)))
            if i in self.pooled:
                y = F.max_pool2d(y, 2, 2, ceil_mode=True)
            outs.append(y)
        z = pad_cat([outs[i] for i in self.final])
        return self.fc(z.float().mean(dim=(2, 3)))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--mixed", action="store_true")
    ap.add_argument("--only", type=int, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    meta = json.load(open(f"{a.dir}/panel.json"))
    c, h, w = meta["input"]
    b = meta["batch"]
    x = torch.frombuffer(bytearray(open(f"{a.dir}/x.f32", "rb").read()), dtype=torch.float32).view(b, c, h, w).to(device)
    y = torch.frombuffer(bytearray(open(f"{a.dir}/y.i64", "rb").read()), dtype=torch.int64).to(device)

    per_arch, per_arch_cpu = [], []
    indices = []
    for i, arch in enumerate(meta["archs"]):
        if a.only is not None and a.only != i:
            continue
        indices.append(i)
        torch.manual_seed(i)
        net = Child(arch, c, meta["classes"]).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=meta["lr"], momentum=meta["momentum"],
                              nesterov=meta["nesterov"], weight_decay=meta["weight_decay"])
        times, cpu_times = [], []
        for s in range(a.warmup + a.steps):
            sync(device)
            t0 = time.perf_counter()
            c0 = time.thread_time_ns()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.mixed):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync(device)
            if s >= a.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
                cpu_times.append((time.thread_time_ns() - c0) / 1e6)
        print(f"torch arch {i}: median step {statistics.median(times):.2f} ms", file=sys.stderr)
        per_arch.append(times)
        per_arch_cpu.append(cpu_times)
    print(json.dumps({"impl": "pytorch", "device": str(device), "threads": a.threads, "mixed_precision": a.mixed,
                      "batch": b, "input": [c, h, w], "archs": indices, "step_ms": per_arch,
                      "step_thread_cpu_ms": per_arch_cpu}))


if __name__ == "__main__":
    main()
