"""CPU cost of the portable kernels: process CPU seconds of NCF training steps and full score
matrices under `cpu_kernels: native` and `portable`, each setting in a fresh process.

    python benchmarks/kernel_cost.py [--steps 30] [--repeats 2]

The model is NCF-d20 at ML-100K size (943 users, 1,682 items), one thread, batch 8,192 (NCF's
default); the score matrices are 3 of 512 users x all items. CPU time, not wall time, so the figures
hold on a loaded machine as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from recsae.kernels import kernel_environment

PROBE = """
import json, sys, time, torch
from recsae.recommenders.ncf import NCF
steps = int(sys.argv[1])
torch.set_num_threads(1)
torch.manual_seed(0)
model = NCF(943, 1682, {**NCF.default_params, "dim": 20})
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
batch = {"users": torch.randint(0, 943, (8192,), generator=g),
         "items": torch.randint(0, 1682, (8192,), generator=g),
         "labels": torch.rand(8192, generator=g).round()}
def step():
    loss = model.training_loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(3):
    step()
start = time.process_time()
for _ in range(steps):
    step()
train = time.process_time() - start
start = time.process_time()
with torch.no_grad():
    for _ in range(3):
        model.score_matrix(model.user_emb[:512], model.item_emb)
print(json.dumps({"train": train, "score": time.process_time() - start}))
"""


def measure(setting: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env.update(kernel_environment(setting))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(steps)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for repeat in range(args.repeats):
        for setting in ("native", "portable"):
            cost = measure(setting, args.steps)
            print(
                f"run {repeat + 1}, {setting:8s}: {args.steps} NCF training steps "
                f"{cost['train']:.2f} CPU s; 3 score matrices 512 x 1682 {cost['score']:.2f} CPU s"
            )


if __name__ == "__main__":
    main()
