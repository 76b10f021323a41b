"""Runs exported children in plain PyTorch and reports how far they are from
the tch child (the `export_reference` tests of nasfleet-torch call this once
for all their cases: one Python process, torch imported once).

    python export_check.py CASES.json

CASES.json is a list of cases:
    {"name", "kind": "cnn" | "lm", "module": generated .py, "weights": .safetensors,
     "io": .safetensors with the inputs and the tch outputs, "torchscript": path or null}
CNN io: "x" (N x C x H x W), "y" (eval logits), "y_train" (logits in training mode).
LM io:  "ids" (T x B int64), "y" (logits (T*B) x vocab), and "shape" metadata.

Prints one JSON object per case on stdout: the relative differences
max|ours - tch| / max|tch| of every output, and the parameter count.
Nothing here asserts: the Rust test does, with the numbers in its message.
"""

import importlib.util
import json
import sys

import torch


def rel(a, b):
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = json.load(open(sys.argv[1]))
    for i, case in enumerate(cases):
        mod = load_module(f"exported_{i}", case["module"])
        io = mod.load_safetensors(case["io"])
        out = {"name": case["name"]}
        with torch.no_grad():
            if case["kind"] == "cnn":
                model = mod.load_child(case["weights"])
                out["rel"] = rel(model(io["x"]), io["y"])
                if case.get("torchscript"):
                    ts = torch.jit.load(case["torchscript"])
                    out["ts_rel"] = rel(ts(io["x"]), io["y"])
                model.train()
                out["train_rel"] = rel(model(io["x"]), io["y_train"])
            else:
                model = mod.load_model(case["weights"])
                logits, _ = model(io["ids"])
                out["rel"] = rel(logits, io["y"])
                if case.get("torchscript"):
                    ts = torch.jit.load(case["torchscript"])
                    layers = len(model.cells)
                    batch = io["ids"].shape[1]
                    vocab = model.decoder.out_features
                    state = torch.zeros(batch, 2 * layers * model.hidden)
                    steps = []
                    for t in range(io["ids"].shape[0]):
                        y = ts(io["ids"][t], state)
                        steps.append(y[:, :vocab])
                        state = y[:, vocab:]
                    out["ts_rel"] = rel(torch.cat(steps), io["y"])
        out["params"] = sum(p.numel() for p in model.parameters())
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
