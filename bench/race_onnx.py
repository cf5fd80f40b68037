"""The ONNX Runtime side of bench/race-pytorch.sh, for LeNet inference.

Exports the race's LeNet (bench/race_torch.py) with `torch.onnx.export`
(a dynamic batch axis), runs it with ONNX Runtime on 2 intra-op threads
(all graph optimisations, sequential execution) for a fixed time, and prints
one line of JSON like the other two sides.

    python bench/race_onnx.py lenet-infer-1000 [seconds]
"""
import json
import warnings
import os
import resource
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch

from race_torch import lenet, time_it


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    what = sys.argv[1] if len(sys.argv) > 1 else "lenet-infer-1000"
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    if not what.startswith("lenet-infer-"):
        sys.exit(f"onnxruntime runs lenet-infer-N only, not {what}")
    n = int(what.rsplit("-", 1)[1])
    model = lenet().eval()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "lenet.onnx")
        torch.onnx.export(model, torch.randn(1, 1, 28, 28), path, dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        sess = session(path)
    x = np.random.default_rng(0).standard_normal((n, 1, 28, 28), dtype=np.float32)
    sps, steps, med = time_it(secs, n, lambda: sess.run(None, {"x": x}))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"side": "onnxruntime", "workload": what, "samples_per_s": round(sps, 1),
                      "steps": steps, "median_step_us": round(med, 1), "peak_rss_kib": rss}))


if __name__ == "__main__":
    main()
