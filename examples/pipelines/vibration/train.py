#!/usr/bin/env python3
"""Train the vibration classifier (8 features -> hidden -> 4 classes) and write it as ONNX.

    python3 train.py --data train.csv --epochs 300 --hidden 16 --seed 7 --out model.onnx

Full-batch Adam on cross-entropy, numpy only; inputs are standardized inside the first Gemm (the
training mean and deviation are folded into its weights), so devices feed raw features. The
graph is the one devices already run (fixtures/models/README.md): input `features`
float32[batch,8], Gemm -> Relu -> Gemm -> Softmax(axis=1), output `scores` float32[batch,4].
Deterministic for a seed. Writes metrics.json (training accuracy and loss) for the run's record.
"""
import argparse
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_CLASSES = 4
CLASSES = ["normal", "imbalance", "bearing_wear", "misalignment"]


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(x, y, hidden, epochs, seed, lr=0.01):
    rng = np.random.RandomState(seed)
    dims = [x.shape[1], hidden, N_CLASSES]
    params = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        params += [rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / d_in), np.zeros(d_out)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(N_CLASSES)[y]
    loss = 0.0
    for t in range(1, epochs + 1):
        w0, b0, w1, b1 = params
        h = np.maximum(x @ w0 + b0, 0.0)
        p = softmax(h @ w1 + b1)
        loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1.0)).mean())
        g_out = (p - onehot) / len(x)
        grads = [None, None, h.T @ g_out, g_out.sum(axis=0)]
        g_h = (g_out @ w1.T) * (h > 0)
        grads[0], grads[1] = x.T @ g_h, g_h.sum(axis=0)
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] = params[i] - lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return params, loss


def to_onnx(layers, seed):
    nodes, inits, x = [], [], "features"
    for i, (w, b) in enumerate(layers):
        wn, bn, y = f"fc{i}.weight", f"fc{i}.bias", f"fc{i}.out"
        inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn)]
        nodes.append(helper.make_node("Gemm", [x, wn, bn], [y], name=f"fc{i}"))
        x = y
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}.out"], name=f"relu{i}"))
            x = f"relu{i}.out"
    nodes.append(helper.make_node("Softmax", [x], ["scores"], name="softmax", axis=1))
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", layers[0][0].shape[0]])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", N_CLASSES])
    graph = helper.make_graph(nodes, "vibration_mlp_retrained", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgefleet-example")
    model.ir_version = 8
    helper.set_model_props(model, {"name": "vibration-mlp", "classes": ",".join(CLASSES), "seed": str(seed)})
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    data = np.genfromtxt(a.data, delimiter=",", skip_header=1, ndmin=2)
    x, y = data[:, :-1], data[:, -1].astype(int)
    mu, sigma = x.mean(axis=0), x.std(axis=0) + 1e-12
    params, loss = train((x - mu) / sigma, y, a.hidden, a.epochs, a.seed)
    w0, b0, w1, b1 = params
    h = np.maximum(((x - mu) / sigma) @ w0 + b0, 0.0)
    accuracy = float((softmax(h @ w1 + b1).argmax(axis=1) == y).mean())
    layers = [((w0 / sigma[:, None]).astype(np.float32), (b0 - (mu / sigma) @ w0).astype(np.float32)),
              (w1.astype(np.float32), b1.astype(np.float32))]
    onnx.save_model(to_onnx(layers, a.seed), a.out)
    with open("metrics.json", "w") as f:
        json.dump({"train_accuracy": accuracy, "train_loss": loss, "rows": len(y)}, f)
    print(f"trained on {len(y)} rows: accuracy {accuracy:.4f}, loss {loss:.4f} -> {a.out}")


if __name__ == "__main__":
    main()
