#!/usr/bin/env python3
"""Make the PyTorch parity fixtures for static-nn's weights module.

Run by hand, never in CI:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch safetensors numpy
    /tmp/venv/bin/python scripts/pytorch_parity.py [--data DIR]

It builds the notebook's four networks in PyTorch with fixed seeds, trains
each briefly on MNIST (so that predictions mean something), and writes into
tests/fixtures/weights/:

- <model>.safetensors: safetensors.torch.save_file(model.state_dict(), ...);
- parity.safetensors: for each model, `<model>.logits` (F32 [8, 10], the
  logits of the first 8 test images), `<model>.pred` (U8 [10000], the
  predicted class of every test image) and `<model>.correct` (I64 [1], how
  many of the 10,000 are right);
- parity.txt: the same counts, readable, with the versions used.

tests/integration/weights/parity.rs loads each file into the matching static-nn type and
checks the logits (within 1e-4) and the count of correct answers.

Inputs are the raw pixels / 255 (the notebook's ToTensor), no normalisation.
The networks return logits: the notebook's final Softmax is left out, as in
static-nn.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "weights")
TRAIN_IMAGES = 20_000  # one epoch over the first 20k training images
BATCH = 64
SEED = 0


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_mnist(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def mlp():
    # static_nn::models::Mlp: keys 1.*, 3.*
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def lenet_seq():
    # static_nn::models::LeNetSeq: keys 0.*, 3.*, 7.*, 9.*
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(400, 84), nn.ReLU(), nn.Linear(84, 10),
    )


class LeNet(nn.Module):
    """static_nn::models::LeNetClass: keys conv1.*, conv2.*, fc1.*, fc2.*."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(400, 84)
        self.fc2 = nn.Linear(84, 10)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.act(self.fc1(x))
        return self.fc2(x)  # logits: no softmax


def lenet5():
    # static_nn::models::LeNet5: keys 0.*, 3.*, 7.*, 9.*, 11.*
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )


MODELS = [("mlp", mlp), ("lenet_seq", lenet_seq), ("lenet_class", LeNet), ("lenet5", lenet5)]


def train(model, x, y, seed):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for i in range(0, len(x), BATCH):
        idx = order[i : i + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x_train, y_train = load_mnist(args.data, "train")
    x_test, y_test = load_mnist(args.data, "t10k")
    x_train, y_train = x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES]
    os.makedirs(OUT, exist_ok=True)
    parity = {}
    lines = [f"torch {torch.__version__}, numpy {np.__version__}; seed {SEED}; "
             f"Adam(lr=2e-3), 1 epoch over {TRAIN_IMAGES} training images, batch {BATCH}"]
    for i, (name, make) in enumerate(MODELS):
        torch.manual_seed(SEED + i)
        model = make()
        loss = train(model, x_train, y_train, SEED + i)
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_test[j : j + 1000]) for j in range(0, len(x_test), 1000)])
        pred = logits.argmax(dim=1)
        correct = int((pred == y_test).sum())
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(OUT, f"{name}.safetensors"))
        parity[f"{name}.logits"] = logits[:8].contiguous()
        parity[f"{name}.pred"] = pred.to(torch.uint8).contiguous()
        parity[f"{name}.correct"] = torch.tensor([correct], dtype=torch.int64)
        top2 = logits.topk(2, dim=1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        line = (f"{name}: keys {', '.join(state)}; train loss {loss:.4f}; "
                f"correct {correct}/10000; smallest top-2 logit margin {margin:.3g}")
        print(line)
        lines.append(line)
    save_file(parity, os.path.join(OUT, "parity.safetensors"))
    with open(os.path.join(OUT, "parity.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
