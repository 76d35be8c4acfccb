"""Recomputes CNN3a's forward pass in numpy from a netdsl checkpoint.

Usage: python3 cnn3a_forward.py CHECKPOINT INPUTS.f32 N OUT.f32

Reads the checkpoint with the `safetensors` package, takes the model's
layers (dfdx names such as "0.0.weight"/"0.0.bias", without the "optimizer."
entries) in the order of their tuple indices, and applies: conv 3x3 valid -> relu -> maxpool 2 -> conv 3x3 valid ->
relu -> maxpool 2 -> flatten (C, H, W order) -> dense -> relu -> dense.
Layouts: conv weight [O, I, K, K], dense weight [OUT, IN], as PyTorch.
INPUTS.f32 holds N images of 1x28x28 little-endian f32; OUT.f32 gets N x 10 logits.
"""
import sys

import numpy as np
from safetensors.numpy import load_file


def natural_key(name):
    return [int(p) if p.isdigit() else p for p in name.split(".")]


def conv2d_valid(x, w, b):
    # x [N, I, H, W], w [O, I, K, K] -> [N, O, H-K+1, W-K+1]
    n, i, h, wd = x.shape
    o, _, k, _ = w.shape
    oh, ow = h - k + 1, wd - k + 1
    cols = np.empty((n, i, k, k, oh, ow), dtype=np.float64)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, ky, kx] = x[:, :, ky:ky + oh, kx:kx + ow]
    y = np.einsum("nijkhw,oijk->nohw", cols, w)
    return y + b[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    oh, ow = h // 2, w // 2
    x = x[:, :, :oh * 2, :ow * 2].reshape(n, c, oh, 2, ow, 2)
    return x.max(axis=(3, 5))


def main():
    path, inputs, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tensors = load_file(path)
    layers = sorted(
        {k.rsplit(".", 1)[0] for k in tensors if not k.startswith("optimizer.")}, key=natural_key
    )
    params = [
        (tensors[p + ".weight"].astype(np.float64), tensors[p + ".bias"].astype(np.float64))
        for p in layers
    ]
    conv = [(w, b) for w, b in params if w.ndim == 4]
    dense = [(w, b) for w, b in params if w.ndim == 2]
    assert len(conv) == 2 and len(dense) == 2, layers
    x = np.fromfile(inputs, dtype="<f4").astype(np.float64).reshape(n, 1, 28, 28)
    for w, b in conv:
        x = maxpool2(np.maximum(conv2d_valid(x, w, b), 0.0))
    x = x.reshape(n, -1)
    x = np.maximum(x @ dense[0][0].T + dense[0][1], 0.0)
    x = x @ dense[1][0].T + dense[1][1]
    x.astype("<f4").tofile(out)


if __name__ == "__main__":
    main()
