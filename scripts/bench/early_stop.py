#!/usr/bin/env python3
"""Early-stopping benchmark on real Fashion-MNIST children (not a test).

For each seed, three `nasfleet local` searches run side by side (same
machine, same moment, so the shared machine's noise hits all three alike)
from config/fashion-mnist-early-stop.toml: early stopping off, `median`,
`asha`; the same search seed, the same wall-clock budget, one worker each.
When the budget is spent each search is stopped (SIGINT: it checkpoints and
leaves), and the script reads its run directory:

- children: children the controller applied with a reward (history.jsonl;
  a batch of m = 4 is applied when complete, so up to 3 finished children
  per run are not counted, alike for every rule);
- CPU-seconds: user + system time of the search process (getrusage), so
  children per CPU-hour does not depend on how busy the machine was;
- epochs trained, children stopped;
- the best child (best.json, the highest reward) is then trained again from
  scratch with the same recipe and seed by `nasfleet train` (all three side
  by side), and its validation accuracy reported.

Prints one JSON object per run and per final training (machine-readable),
then a Markdown table; `--out FILE` also writes the JSON lines there.

    eval "$(scripts/setup.sh)" && cargo build -p nasfleet
    target/debug/nasfleet data fetch fashion-mnist
    python3 scripts/bench/early_stop.py --binary target/debug/nasfleet --seeds 0 1 2 --budget 420

(the numbers in config/early-stop-bench.md came from this debug build; the
default --binary is the release build, target/release/nasfleet.)
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

RULES = ["off", "median", "asha"]


def config_for(base: str, rule: str, seed: int) -> str:
    text = re.sub(r"(?m)^seed = \d+", f"seed = {seed}", base, count=1)
    return re.sub(r'(?m)^rule = "\w+"', f'rule = "{rule}"', text, count=1)


def read_run(run_dir: str) -> dict:
    children = stopped = epochs = 0
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        for line in f:
            h = json.loads(line)
            if h.get("reward") is None:
                continue
            children += 1
            epochs += len(h.get("metrics") or [])
            if h.get("status") == "stopped":
                stopped += 1
    best = None
    p = os.path.join(run_dir, "best.json")
    if os.path.exists(p):
        with open(p) as f:
            best = json.load(f)
    return {"children": children, "stopped": stopped, "epochs": epochs, "best": best}


def run_group(binary, cfgs, dirs, budget, data_dir):
    """Starts one search per rule, stops all after `budget` seconds; returns
    CPU seconds per rule."""
    procs = {}
    for rule in RULES:
        cmd = [binary, "local", "--config", cfgs[rule], "--run-dir", dirs[rule],
               "--run", f"es-{rule}", "--workers", "1", "--device", "cpu"]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        log = open(os.path.join(os.path.dirname(dirs[rule]), f"{rule}.log"), "w")
        procs[rule] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    time.sleep(budget)
    for p, _ in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    cpu = {}
    for rule, (p, log) in procs.items():
        _, status, ru = os.wait4(p.pid, 0)
        log.close()
        cpu[rule] = ru.ru_utime + ru.ru_stime
    return cpu


def final_training(binary, cfgs, bests, seed, work, data_dir):
    """Trains each rule's best child with the recipe (side by side)."""
    procs = {}
    for rule in RULES:
        if bests[rule] is None:
            continue
        arch = os.path.join(work, f"best-{rule}.json")
        with open(arch, "w") as f:
            json.dump(bests[rule]["arch"], f)
        cmd = [binary, "train", "--arch", arch, "--config", cfgs[rule], "--seed", str(seed),
               "--device", "cpu", "--json"]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        procs[rule] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = {}
    for rule, p in procs.items():
        text, _ = p.communicate()
        report = json.loads(text)
        out[rule] = {"valid_accuracy": report.get("final_valid_accuracy"),
                     "test_accuracy": report.get("test_accuracy")}
    return out


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.4g}"
    return f"{statistics.mean(xs):.4g} ± {statistics.stdev(xs):.2g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/fashion-mnist-early-stop.toml")
    ap.add_argument("--binary", default="target/release/nasfleet")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=420.0, help="wall-clock seconds per search")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="also write the JSON lines here")
    ap.add_argument("--keep", default=None, help="keep run directories under this directory")
    a = ap.parse_args()
    with open(a.config) as f:
        base = f.read()
    rows = []
    out = open(a.out, "w") if a.out else None

    def emit(obj):
        line = json.dumps(obj, sort_keys=True)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    root = a.keep or tempfile.mkdtemp(prefix="nasfleet-early-stop-")
    for seed in a.seeds:
        work = os.path.join(root, f"seed{seed}")
        os.makedirs(work, exist_ok=True)
        cfgs, dirs = {}, {}
        for rule in RULES:
            cfgs[rule] = os.path.join(work, f"{rule}.toml")
            with open(cfgs[rule], "w") as f:
                f.write(config_for(base, rule, seed))
            dirs[rule] = os.path.join(work, f"run-{rule}")
        cpu = run_group(a.binary, cfgs, dirs, a.budget, a.data_dir)
        runs = {rule: read_run(dirs[rule]) for rule in RULES}
        finals = final_training(a.binary, cfgs, {r: runs[r]["best"] for r in RULES}, seed, work, a.data_dir)
        for rule in RULES:
            r = runs[rule]
            row = {
                "kind": "early_stop_bench",
                "seed": seed,
                "rule": rule,
                "budget_s": a.budget,
                "cpu_s": round(cpu[rule], 2),
                "children": r["children"],
                "stopped": r["stopped"],
                "epochs": r["epochs"],
                "children_per_cpu_hour": round(r["children"] / cpu[rule] * 3600, 2) if cpu[rule] > 0 else None,
                "best_reward": r["best"]["reward"] if r["best"] else None,
                "best_job": r["best"]["job_id"] if r["best"] else None,
                "final_valid_accuracy": finals.get(rule, {}).get("valid_accuracy"),
                "final_test_accuracy": finals.get(rule, {}).get("test_accuracy"),
            }
            rows.append(row)
            emit(row)
    # Ratios against `off` of the same seed (side by side).
    print()
    print(f"| rule | children / CPU-hour | x off (per seed) | children | stopped | epochs trained | epochs / child | best child's valid acc after final training |")
    print("|---|---|---|---|---|---|---|---|")
    for rule in RULES:
        rs = [r for r in rows if r["rule"] == rule]
        ratios = []
        for r in rs:
            off = next(o for o in rows if o["rule"] == "off" and o["seed"] == r["seed"])
            if off["children_per_cpu_hour"] and r["children_per_cpu_hour"]:
                ratios.append(r["children_per_cpu_hour"] / off["children_per_cpu_hour"])
        per_child = [r["epochs"] / r["children"] for r in rs if r["children"]]
        print(f"| {rule} | {mean_sd([r['children_per_cpu_hour'] for r in rs])} | "
              f"{mean_sd(ratios)} ({', '.join(f'{x:.2f}' for x in ratios)}) | "
              f"{mean_sd([r['children'] for r in rs])} | {mean_sd([r['stopped'] for r in rs])} | "
              f"{mean_sd([r['epochs'] for r in rs])} | {mean_sd(per_child)} | "
              f"{mean_sd([r['final_valid_accuracy'] for r in rs])} |")
    if out:
        out.close()
    print(f"\nrun directories: {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
