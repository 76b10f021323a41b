"""PyTorch eager side of the language-model training-step benchmark.

Reads a cell in the project's architecture JSON ({"version": 1, "space":
"rnn-cell", "base", "nodes", "inject", "cell_node"}), builds the same
language model as crates/nasfleet-torch/src/rnn (embedding, 2 layers of the
cell, linear softmax; no dropout) with the same cell evaluation: all leaf
x-projections of a segment in one matmul, all h-projections of a step in one
matmul, leaf column blocks ordered by (combination, activation) so each run
of leaves sharing a combination is combined by one op and each group sharing
an activation is activated by one op; internal nodes one by one; the inject
node merges c_{t-1} into its output; c_t is the cell node's pre-activation.
Times warm-up + timed steps of: forward over a BPTT segment, cross entropy,
backward, clip_grad_norm_(5), torch.optim.SGD(lr 1) — and the same step with
torch.nn.LSTM of equal hidden size. Prints one JSON line.

Usage: python lm_step_reference.py CELL.json [--hidden 200] [--batch 20]
       [--bptt 35] [--vocab 10000] [--reps 20] [--device cpu|cuda:N]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

COMBINES = ["add", "elem_mult", "max"]
ACTIVATIONS = ["identity", "tanh", "sigmoid", "relu", "sin"]


def combine(kind, a, b):
    if kind == "add":
        return a + b
    if kind == "elem_mult":
        return a * b
    return torch.maximum(a, b)


def activate(kind, x):
    return {"identity": lambda t: t, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
            "relu": torch.relu, "sin": torch.sin}[kind](x)


def children(base, k):
    """Children of node k in a level-ordered full binary tree (None for a leaf)."""
    if k < base:
        return None
    start, width, prev = base, base // 2, 0
    while k >= start + width:
        prev, start, width = start, start + width, width // 2
    i = k - start
    return prev + 2 * i, prev + 2 * i + 1


class Cell(nn.Module):
    def __init__(self, arch, inp, hidden):
        super().__init__()
        self.arch, self.h = arch, hidden
        base = arch["base"]
        nodes = arch["nodes"]
        order = sorted(range(base), key=lambda k: (COMBINES.index(nodes[k]["combine"]),
                                                    ACTIVATIONS.index(nodes[k]["activation"]), k))
        self.runs = []  # [combine, start, len, [[activation, start, [leaves]]]]
        for slot, k in enumerate(order):
            c, a = nodes[k]["combine"], nodes[k]["activation"]
            if not self.runs or self.runs[-1][0] != c:
                self.runs.append([c, slot, 0, []])
            run = self.runs[-1]
            run[2] += 1
            if not run[3] or run[3][-1][0] != a:
                run[3].append([a, slot, []])
            run[3][-1][2].append(k)
        bound = hidden ** -0.5
        self.wx = nn.Parameter(torch.empty(inp, base * hidden).uniform_(-bound, bound))
        self.wh = nn.Parameter(torch.empty(hidden, base * hidden).uniform_(-bound, bound))

    def step(self, xp, h_in, c_prev):
        H, arch = self.h, self.arch
        base, nodes = arch["base"], arch["nodes"]
        inj, cell_node = arch["inject"], arch["cell_node"]
        n = 2 * base - 1
        hp = h_in @ self.wh
        out = [None] * n
        c_t = None
        whole = len(self.runs) == 1
        for comb, start, length, groups in self.runs:
            xs = xp if whole else xp.narrow(1, start * H, length * H)
            hs = hp if whole else hp.narrow(1, start * H, length * H)
            pre = combine(comb, xs, hs)
            for act, gstart, leaves in groups:
                cnt = len(leaves)
                pre_g = pre if len(groups) == 1 else pre.narrow(1, (gstart - start) * H, cnt * H)
                out_g = activate(act, pre_g)
                for i, k in enumerate(leaves):
                    if k == cell_node:
                        c_t = pre_g.narrow(1, i * H, H)
                    out[k] = out_g if cnt == 1 else out_g.narrow(1, i * H, H)

        def inject(o):
            return activate(inj["activation"], combine(inj["combine"], o, c_prev))

        if inj["node"] < base:
            out[inj["node"]] = inject(out[inj["node"]])
        for k in range(base, n):
            l, r = children(base, k)
            pre = combine(nodes[k]["combine"], out[l], out[r])
            if k == cell_node:
                c_t = pre
            o = activate(nodes[k]["activation"], pre)
            if k == inj["node"]:
                o = inject(o)
            out[k] = o
        return out[n - 1], c_t


class CellLM(nn.Module):
    def __init__(self, arch, vocab, hidden, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.cells = nn.ModuleList(Cell(arch, hidden, hidden) for _ in range(layers))
        self.dec = nn.Linear(hidden, vocab)
        self.hidden = hidden

    def forward(self, ids, state):
        x = self.emb(ids)
        nxt = []
        for cell, (h, c) in zip(self.cells, state):
            xp = (x @ cell.wx).unbind(0)
            outs = []
            for xp_t in xp:
                h, c = cell.step(xp_t, h, c)
                outs.append(h)
            x = torch.stack(outs, 0)
            nxt.append((h, c))
        return self.dec(x.reshape(-1, self.hidden)), nxt


class LstmLM(nn.Module):
    def __init__(self, vocab, hidden, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.dec = nn.Linear(hidden, vocab)
        self.hidden = hidden

    def forward(self, ids, state):
        out, nxt = self.lstm(self.emb(ids), state)
        return self.dec(out.reshape(-1, self.hidden)), nxt


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_steps(model, state, ids, target, reps, dev, detach):
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step():
        nonlocal state
        logits, nxt = model(ids, state)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = detach(nxt)

    for _ in range(3):
        step()
    sync(dev)
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        sync(dev)
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cell")
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    with open(a.cell) as f:
        arch = json.load(f)
    if arch.get("space") != "rnn-cell":
        raise SystemExit(f"{a.cell}: not an rnn-cell architecture")
    dev = torch.device(a.device)
    torch.manual_seed(0)
    tokens = torch.randint(a.vocab, (a.bptt + 1, a.batch), device=dev)
    ids, target = tokens[:-1], tokens[1:].reshape(-1)

    model = CellLM(arch, a.vocab, a.hidden).to(dev)
    zeros = torch.zeros(a.batch, a.hidden, device=dev)
    cell_ms = time_steps(model, [(zeros, zeros)] * 2, ids, target, a.reps, dev,
                         lambda s: [(h.detach(), c.detach()) for h, c in s])
    lstm = LstmLM(a.vocab, a.hidden).to(dev)
    z2 = torch.zeros(2, a.batch, a.hidden, device=dev)
    lstm_ms = time_steps(lstm, (z2, z2), ids, target, a.reps, dev, lambda s: (s[0].detach(), s[1].detach()))
    print(json.dumps({"bench": "lm_step", "impl": "pytorch-eager", "device": str(dev),
                      "threads": torch.get_num_threads(), "hidden": a.hidden, "batch": a.batch,
                      "bptt": a.bptt, "vocab": a.vocab, "base": arch["base"],
                      "params": sum(p.numel() for p in model.parameters()), "reps": a.reps,
                      "cell_step_ms": round(cell_ms, 3), "lstm_step_ms": round(lstm_ms, 3)}))


if __name__ == "__main__":
    main()
