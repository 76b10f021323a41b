#!/usr/bin/env python3
"""Reference numbers for crates/nasfleet-torch/tests/torch/controller_reference.rs.

The controller network written independently in plain PyTorch, one sequence
at a time (the Rust one is batched): a 2-layer 35-unit torch.nn.LSTM, one
nn.Embedding and one nn.Linear head per decision type, a learned start
input, and anchor attention sigmoid(v . tanh(W_prev h_j + W_curr h_i)) with
the next input the mean of the selected anchors' hidden states (zeros or the
start input when none is selected).

Weights are not random: every variable, taken in sorted state_dict-name
order (index p), gets element k (row-major) =
    ((k * 2654435761 + p * 40503 + 12345) mod 2^32 mod 10007) / 10006 * 0.8 - 0.4
in float64, rounded to float32 -- exact integer arithmetic, so the Rust test
builds bit-identical weights from the same formula without any file.

For each case the script prints, as JSON: the variable names and shapes,
each fixed action sequence's log-probability and summed entropy, and, after
one REINFORCE update (EMA baseline = batch mean on the first batch, Adam with
PyTorch's defaults), the loss, the gradient norm and the new log-probs.

Run (the torch the project's setup script installs):
    eval "$(scripts/setup.sh)" && python crates/nasfleet-torch/tests/reference/controller_reference.py
"""
import json

import torch
import torch.nn.functional as F
from torch import nn

H = 35
LAYERS = 2
torch.set_default_dtype(torch.float32)


def formula_values(p_index, n):
    return [
        (((k * 2654435761 + p_index * 40503 + 12345) % 2**32) % 10007) / 10006.0 * 0.8 - 0.4
        for k in range(n)
    ]


class Controller(nn.Module):
    def __init__(self, choices, empty_anchor):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, H))
        self.lstm = nn.LSTM(H, H, num_layers=LAYERS, batch_first=True)
        self.embed = nn.ModuleList([nn.Embedding(c, H) for c in choices])
        self.head = nn.ModuleList([nn.Linear(H, c) for c in choices])
        self.w_prev = nn.Linear(H, H, bias=False)
        self.w_curr = nn.Linear(H, H, bias=False)
        self.v = nn.Linear(H, 1, bias=False)
        self.empty_anchor = empty_anchor
        with torch.no_grad():
            for p_index, (name, t) in enumerate(sorted(self.state_dict(keep_vars=True).items())):
                vals = torch.tensor(formula_values(p_index, t.numel()), dtype=torch.float64)
                t.copy_(vals.to(torch.float32).reshape(t.shape))

    def score(self, steps, actions):
        """log P(actions) and the summed entropy of every decision."""
        x = self.start
        state = None
        anchors = []
        pos = 0
        logp = torch.zeros(())
        ent = torch.zeros(())
        for kind, arg in steps:
            out, state = self.lstm(x.unsqueeze(1), state)
            h = out[:, 0, :]
            if kind == "choice":
                lp = torch.log_softmax(self.head[arg](h), -1)[0]
                a = actions[pos]
                logp = logp + lp[a]
                ent = ent - (lp.exp() * lp).sum()
                x = self.embed[arg](torch.tensor([a]))
                pos += 1
            else:
                i = arg
                selected = []
                for j in range(i):
                    logit = self.v(torch.tanh(self.w_prev(anchors[j]) + self.w_curr(h)))[0, 0]
                    lp1, lp0 = F.logsigmoid(logit), F.logsigmoid(-logit)
                    p = torch.sigmoid(logit)
                    ent = ent - (p * lp1 + (1 - p) * lp0)
                    if actions[pos + j] == 1:
                        logp = logp + lp1
                        selected.append(j)
                    else:
                        logp = logp + lp0
                if selected:
                    x = torch.stack([anchors[j] for j in selected]).mean(0)
                elif self.empty_anchor == "start":
                    x = self.start
                else:
                    x = torch.zeros(1, H)
                anchors.append(h)
                pos += i
        assert pos == len(actions), (pos, len(actions))
        return logp, ent


def cnn_schema(layers, predict_strides):
    # Decision types: filter_height, filter_width, stride_height, stride_width, num_filters.
    choices = [4, 4, 3, 3, 4]
    steps = []
    for i in range(layers):
        steps += [("choice", 0), ("choice", 1)]
        if predict_strides:
            steps += [("choice", 2), ("choice", 3)]
        steps += [("choice", 4), ("anchor", i)]
    return choices, steps


def cell_schema(base):
    # Decision types: combine (add, elem_mult), activation (4), cell_index (2*base-2).
    nodes = 2 * base - 1
    choices = [2, 4, nodes - 1]
    steps = []
    for _ in range(nodes):
        steps += [("choice", 0), ("choice", 1)]
    steps += [("choice", 0), ("choice", 1), ("choice", 2), ("choice", 2)]
    return choices, steps


CASES = [
    {
        "name": "cnn_strides",
        "schema": cnn_schema(5, True),
        "empty_anchor": "zeros",
        "sequences": [
            [1, 1, 0, 0, 3,
             2, 0, 1, 2, 0, 1,
             3, 3, 2, 0, 1, 0, 0,
             0, 2, 0, 1, 2, 1, 0, 1,
             1, 3, 1, 1, 3, 1, 1, 1, 1],
            [0, 3, 2, 1, 1,
             1, 1, 0, 0, 2, 0,
             2, 1, 1, 1, 3, 1, 1,
             3, 0, 2, 2, 0, 0, 1, 0,
             1, 2, 0, 1, 2, 0, 0, 1, 0],
        ],
        "update": {"rewards": [1.0, 0.2], "lr": 0.001, "entropy_weight": 0.0, "grad_clip": None},
    },
    {
        "name": "cnn_start",
        "schema": cnn_schema(4, False),
        "empty_anchor": "start",
        "sequences": [
            [1, 1, 3, 2, 0, 0, 0, 3, 3, 1, 1, 0, 2, 1, 2, 0, 0, 0],
            [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1, 3, 3, 3, 1, 1, 1],
        ],
        "update": {"rewards": [0.3, 0.9], "lr": 0.002, "entropy_weight": 0.05, "grad_clip": None},
    },
    {
        "name": "cell",
        "schema": cell_schema(8),
        "empty_anchor": "zeros",
        "sequences": [
            # The paper's cell (TensorFlow Addons NASCell), as the core encodes it.
            [0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2,
             1, 1, 0, 1, 1, 1, 0, 2, 1, 0, 0, 1, 1, 1,
             0, 1, 8, 12],
            [1, 0, 1, 1, 0, 3, 0, 0, 1, 2, 0, 3, 1, 1, 0, 0,
             1, 2, 0, 3, 0, 1, 1, 2, 0, 0, 1, 0, 1, 2,
             1, 3, 13, 0],
        ],
        "update": {"rewards": [0.8, 0.1], "lr": 0.005, "entropy_weight": 0.1, "grad_clip": 0.05},
    },
]


def run_case(case):
    choices, steps = case["schema"]
    net = Controller(choices, case["empty_anchor"])
    names = [[n, list(t.shape)] for n, t in sorted(net.state_dict().items())]
    before = [net.score(steps, a) for a in case["sequences"]]

    u = case["update"]
    rewards = u["rewards"]
    m = len(rewards)
    baseline = sum(rewards) / m  # the EMA baseline starts at the first batch's mean
    opt = torch.optim.Adam(net.parameters(), lr=u["lr"])
    opt.zero_grad(set_to_none=True)
    loss = torch.zeros(())
    for a, r in zip(case["sequences"], rewards):
        lp, ent = net.score(steps, a)
        loss = loss - (r - baseline) * lp - u["entropy_weight"] * ent
    loss = loss / m
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    grad_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    if u["grad_clip"] is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), u["grad_clip"])
    opt.step()
    with torch.no_grad():
        after = [net.score(steps, a)[0].item() for a in case["sequences"]]
    return {
        "name": case["name"],
        "parameters": names,
        "log_probs": [lp.item() for lp, _ in before],
        "entropies": [e.item() for _, e in before],
        "update": {
            "loss": loss.item(),
            "baseline": baseline,
            "grad_norm": grad_norm,
            "log_probs_after": after,
        },
    }


if __name__ == "__main__":
    print(json.dumps({"torch": torch.__version__, "cases": [run_case(c) for c in CASES]}, indent=1))
