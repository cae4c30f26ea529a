#!/usr/bin/env python3
"""onnxruntime reference for `cargo bench -p edgefleet-agent --bench inference`.

Times the same fixture models on the same input, single-threaded (one intra-op and one
inter-op thread, sequential execution), one call at a time, and prints the median and p99
per call in the same table format. Also checks onnxruntime's outputs against the Rust
runtime's, through `edgefleet-agent infer` when the binary is given.

    pip install onnxruntime numpy
    python3 agent/benches/onnxruntime_reference.py [--agent target/release/edgefleet-agent]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROUNDS = 20
MODELS = [("vibration_mlp.onnx", 10_000), ("vibration_mlp_wide.onnx", 1_000)]
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "models")


def bench(path, per_round):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = np.sin(np.arange(8, dtype=np.float32) * np.float32(0.37)).reshape(1, 8).astype(np.float32)
    feeds = {"features": x}
    for _ in range(1000):  # warm up
        session.run(None, feeds)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        for _ in range(per_round):
            start = clock()
            session.run(None, feeds)
            samples.append(clock() - start)
    samples.sort()

    def q(p):
        return samples[round((len(samples) - 1) * p)] / 1000.0

    return x, session.run(None, feeds)[0], q(0.5), q(0.99), len(samples)


def agent_scores(agent, model, x):
    with tempfile.TemporaryDirectory() as tmp:
        request = os.path.join(tmp, "x.json")
        with open(request, "w") as f:
            json.dump({"inputs": [{"name": "features", "shape": list(x.shape), "data": x.ravel().tolist()}]}, f)
        out = subprocess.run([agent, "infer", "--model", model, "--input", request, "--json"],
                             check=True, capture_output=True, text=True).stdout
        return np.array(json.loads(out)["outputs"][0]["data"], dtype=np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", help="edgefleet-agent binary, to compare outputs")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    print("| model | median µs | p99 µs | calls | max |ort - agent| |")
    print("|---|---|---|---|---|")
    for name, per_round in MODELS:
        path = os.path.join(FIXTURES, name)
        x, y, p50, p99, calls = bench(path, per_round)
        diff = "n/a"
        if args.agent:
            diff = f"{np.max(np.abs(agent_scores(args.agent, path, x) - y.ravel())):.1e}"
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {calls} | {diff} |")


if __name__ == "__main__":
    main()
