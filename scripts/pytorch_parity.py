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
- parity.txt: the same counts, readable, with the versions used;
- resnet_init.safetensors, resnet_grad1.safetensors and
  resnet_sgd20.safetensors: MnistResNet's initial state, the gradients of
  its first training batch, and its state after 20 SGD steps in training
  mode (lr 0.001, batch 64, the first 1280 training images in order,
  dropout off), for the training-mode parity of batch norm (parameters and
  running statistics).

`--only resnet` remakes one model's fixtures and keeps the others'.

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
from torch.nn import functional as F

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


class BasicBlock(nn.Module):
    """static_nn::models::BasicBlock: keys conv1.*, bn1.*, conv2.*, bn2.*, shortcut.{0,1}.*."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class MnistResNet(nn.Module):
    """static_nn::models::MnistResNet: keys stem.*, layer1..3.*, fc.*."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(self.dropout(x))


MODELS = [("mlp", mlp), ("lenet_seq", lenet_seq), ("lenet_class", LeNet), ("lenet5", lenet5),
          ("resnet", MnistResNet)]

# Training parity (MnistResNet): SGD steps from the same initial weights on
# the first STEPS * STEP_BATCH training images in file order, dropout off.
# The learning rate is small on purpose: early training of this network is
# chaotic at larger rates, so that PyTorch's own float32 and float64 runs
# part ways (after 20 steps of batch 32 at lr 0.05 they differ by 5% in
# layer2.bn1.running_var; at lr 0.001, batch 64, by 2e-5), and no float32
# implementation could be held to 1e-4 there. The gradients of the first
# batch are saved too, to check them tightly.
STEPS = 20
STEP_BATCH = 64
STEP_LR = 0.001


def training_parity(x, y):
    """Writes resnet_init.safetensors (the initial state) and
    resnet_sgd20.safetensors (the state after STEPS SGD steps in training
    mode: parameters and running statistics)."""
    torch.manual_seed(SEED + 100)
    model = MnistResNet()
    model.dropout.p = 0.0
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(init, os.path.join(OUT, "resnet_init.safetensors"))
    opt = torch.optim.SGD(model.parameters(), lr=STEP_LR)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for s in range(STEPS):
        xb, yb = x[s * STEP_BATCH:(s + 1) * STEP_BATCH], y[s * STEP_BATCH:(s + 1) * STEP_BATCH]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if s == 0:
            grads = {k: p.grad.detach().clone().contiguous() for k, p in model.named_parameters()}
            save_file(grads, os.path.join(OUT, "resnet_grad1.safetensors"))
        opt.step()
    after = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(after, os.path.join(OUT, f"resnet_sgd{STEPS}.safetensors"))
    return (f"resnet training parity: {STEPS} SGD steps (lr {STEP_LR}, batch {STEP_BATCH}, "
            f"first {STEPS * STEP_BATCH} training images in order, dropout off); "
            f"final loss {loss.item():.4f}")


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
    parser.add_argument("--only", help="make the fixtures of this model only, keeping the others")
    parser.add_argument("--data", default=os.environ.get("MNIST_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x_train, y_train = load_mnist(args.data, "train")
    x_test, y_test = load_mnist(args.data, "t10k")
    x_train, y_train = x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES]
    os.makedirs(OUT, exist_ok=True)
    parity = {}
    old_lines = []
    if args.only:
        from safetensors.torch import load_file
        parity = {k: v for k, v in load_file(os.path.join(OUT, "parity.safetensors")).items()
                  if not k.startswith(args.only + ".")}
        with open(os.path.join(OUT, "parity.txt")) as f:
            old_lines = [l.rstrip("\n") for l in f][1:]
        old_lines = [l for l in old_lines if not l.startswith(args.only)]
    lines = [f"torch {torch.__version__}, numpy {np.__version__}; seed {SEED}; "
             f"Adam(lr=2e-3), 1 epoch over {TRAIN_IMAGES} training images, batch {BATCH}"]
    lines += old_lines
    for i, (name, make) in enumerate(MODELS):
        if args.only and name != args.only:
            continue
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
    if not args.only or args.only == "resnet":
        x_all, y_all = load_mnist(args.data, "train")
        line = training_parity(x_all, y_all)
        print(line)
        lines.append(line)
    save_file(parity, os.path.join(OUT, "parity.safetensors"))
    with open(os.path.join(OUT, "parity.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
