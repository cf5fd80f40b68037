"""The PyTorch side of bench/race-pytorch.sh.

Runs one workload for a fixed time on 2 threads and prints one line of JSON
(samples/s, median step, peak RSS), like `examples/race.rs` does for static-nn.

    python bench/race_torch.py lenet-train [seconds]

The networks are the notebook's: the class LeNet (conv 1->6 k5 p2, ReLU, max
pool 2, conv 6->16 k5, ReLU, max pool 2, 400->84, ReLU, 84->10) and the MLP
(784->128, ReLU, 128->10); MnistResNet is the one of scripts/pytorch_parity.py
(static_nn::models::MnistResNet), copied here. Training (model.train()): batch 64, Adam (lr 1e-3), cross-entropy
on random data (the same on both sides). Inference: model.eval(), forward
under no_grad; `resnet-infer-256` is batch 256.
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class BasicBlock(nn.Module):
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


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def time_it(secs, per_step, step):
    t = time.perf_counter()
    while time.perf_counter() - t < min(secs * 0.2, 0.5):
        step()
    laps = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        t = time.perf_counter()
        step()
        laps.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    laps.sort()
    return len(laps) * per_step / total, len(laps), laps[len(laps) // 2] * 1e6


def train(model, secs):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 1, 28, 28)
    y = torch.tensor([(i * 7) % 10 for i in range(64)])

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return time_it(secs, 64, step)


def infer(n, secs, model=None):
    model = (model or LeNet()).eval()
    x = torch.randn(n, 1, 28, 28)

    def step():
        with torch.no_grad():
            model(x)

    return time_it(secs, n, step)


def lenet():
    """The race's LeNet, also exported to ONNX by bench/race_onnx.py."""
    return LeNet()


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "lenet-train"
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    if what == "lenet-train":
        r = train(LeNet(), secs)
    elif what == "mlp-train":
        r = train(mlp(), secs)
    elif what == "resnet-train":
        r = train(MnistResNet(), secs)
    elif what == "resnet-infer-256":
        r = infer(256, secs, MnistResNet())
    elif what.startswith("lenet-infer-"):
        r = infer(int(what.rsplit("-", 1)[1]), secs)
    elif what == "sgemm-2048":
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        r = time_it(secs, 1, lambda: torch.mm(a, b))
    else:
        sys.exit(f"unknown workload {what}")
    sps, steps, med = r
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"side": "pytorch", "workload": what, "samples_per_s": round(sps, 1),
                      "steps": steps, "median_step_us": round(med, 1), "peak_rss_kib": rss}))


if __name__ == "__main__":
    main()
