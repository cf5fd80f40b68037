#!/usr/bin/env python3
"""Reference numbers for static-nn's optimizers, gradient clipping and
learning-rate schedules (the constants in src/train/optim/*.rs's tests).

Run by hand, never in CI, with any PyTorch 2.x:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch
    /tmp/venv/bin/python scripts/optim_reference.py

and paste the printed arrays into the tests that name them.

The parameters are those of a `Linear<3, 2>`: `weight` [2, 3] and `bias`
[2], eight f32 values in that order, starting at P0[i] = ((i % 5) - 2) *
0.375. The gradient of step t (0-based) is G(t)[i] = ((7 i + 3 t) % 11 - 5)
/ 4. Both are exact in f32, so that the Rust tests build the very same
inputs. Each configuration runs STEPS steps of the single-tensor (for-loop)
implementation (`foreach=False`) and prints the eight parameters after the
last step, and for the stateful optimizers the state after it.
"""
import math

import torch

STEPS = 5
N = 8


def p0():
    return [((i % 5) - 2) * 0.375 for i in range(N)]


def grad(t):
    return [((7 * i + 3 * t) % 11 - 5) / 4 for i in range(N)]


def fmt(xs):
    return "[" + ", ".join(repr(float(x)) for x in xs) + "]"


def run(name, make, clip=None):
    w = torch.tensor(p0()[:6], dtype=torch.float32).reshape(2, 3).requires_grad_()
    b = torch.tensor(p0()[6:], dtype=torch.float32).requires_grad_()
    opt = make([w, b])
    norms = []
    for t in range(STEPS):
        g = torch.tensor(grad(t), dtype=torch.float32)
        w.grad = g[:6].reshape(2, 3).clone()
        b.grad = g[6:].clone()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_([w, b], clip)))
        opt.step()
    print(f"// {name}")
    print(f"const {name}: [f64; {N}] = {fmt(torch.cat([w.detach().flatten(), b.detach()]).tolist())};")
    for key in ("momentum_buffer", "exp_avg", "exp_avg_sq", "square_avg", "grad_avg"):
        st = [opt.state[p].get(key) for p in (w, b)]
        if all(s is not None for s in st):
            vals = torch.cat([s.flatten() for s in st]).tolist()
            print(f"const {name}_{key.upper()}: [f64; {N}] = {fmt(vals)};")
    if norms:
        print(f"const {name}_NORMS: [f64; {STEPS}] = {fmt(norms)};")
    print()


def main():
    print(f"// torch {torch.__version__}")
    run("SGD_PLAIN", lambda ps: torch.optim.SGD(ps, lr=0.1, foreach=False))
    run(
        "SGD_NESTEROV",
        lambda ps: torch.optim.SGD(
            ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False
        ),
    )
    run(
        "SGD_DAMPENED",
        lambda ps: torch.optim.SGD(
            ps, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1, foreach=False
        ),
    )
    run(
        "ADAM_WD",
        lambda ps: torch.optim.Adam(
            ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05, foreach=False
        ),
    )
    run("ADAMW", lambda ps: torch.optim.AdamW(ps, lr=0.01, foreach=False))
    run(
        "RMSPROP_CENTERED",
        lambda ps: torch.optim.RMSprop(
            ps, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
            weight_decay=0.02, foreach=False,
        ),
    )
    run("RMSPROP_PLAIN", lambda ps: torch.optim.RMSprop(ps, lr=0.01, foreach=False))
    run("SGD_CLIPPED", lambda ps: torch.optim.SGD(ps, lr=0.1, foreach=False), clip=1.0)

    # Schedules, on a dummy optimizer with lr 0.1.
    def lrs(make, n):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    print("// StepLR(step_size=3, gamma=0.5), base 0.1, epochs 0..10")
    print(f"const STEP_LR: [f64; 10] = {fmt(lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 10))};")
    print("// OneCycleLR(max_lr=0.1, total_steps=20), defaults otherwise")
    print(
        "const ONE_CYCLE: [f64; 20] = "
        + fmt(lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=20), 20))
        + ";"
    )
    print("// OneCycleLR(max_lr=0.2, total_steps=10, pct_start=0.25, div_factor=10, final_div_factor=100)")
    print(
        "const ONE_CYCLE_CUSTOM: [f64; 10] = "
        + fmt(
            lrs(
                lambda o: torch.optim.lr_scheduler.OneCycleLR(
                    o, 0.2, total_steps=10, pct_start=0.25, div_factor=10, final_div_factor=100
                ),
                10,
            )
        )
        + ";"
    )
    print("// LinearLR(start_factor=1/3, total_iters=3) then CosineAnnealingLR(T_max=6, eta_min=0.001), base 0.1")
    print(
        "const WARMUP_COSINE: [f64; 10] = "
        + fmt(
            lrs(
                lambda o: torch.optim.lr_scheduler.SequentialLR(
                    o,
                    [
                        torch.optim.lr_scheduler.LinearLR(o, 1 / 3, total_iters=3),
                        torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=0.001),
                    ],
                    milestones=[3],
                ),
                10,
            )
        )
        + ";"
    )


if __name__ == "__main__":
    main()
