"""What training in numpy costs, against minGPT's torch loop (tests/torch_gpt.py) on the same task, batch and model.

    python benchmarks/training_speed.py [--rounds 3] [--steps 20] [--full]

(a) Time per training step (forward, backward, clipping, AdamW), numpy's Trainer.step against torch's, alternating
    in rounds of `steps` steps each; the ratio numpy / torch of each round, and their range, for nano-gpt (batch 64
    of 11 tokens) and shakespeare-char (batch 32 of 128 characters, on a random text of its characters: the speed
    does not depend on the text). Target: at most 1.5x.
(b) nano-gpt from random weights with numpy: the first step (checked every 50) at which greedy decoding sorts all 729
    inputs, and the seconds to it. Target: under 5 minutes.
(c) With --full: shakespeare-char's whole run (2500 steps) in numpy. Target: under 30 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from llmviz.training.chars import CHARS
from llmviz.training.numpy_train import Trainer
from llmviz.training.tasks import Task, nano_gpt, shakespeare_char, sort_accuracy
from torch_gpt import TorchGPT, adamw


def torch_steps(task: Task, steps: int, seed: int = 0):
    """A function that runs `steps` of minGPT's loop (no dropout, as numpy's) on the task's batches."""
    torch.manual_seed(seed)
    net = TorchGPT(task.config, pdrop=0.0)
    net.train()
    opt, rng = adamw(net, task.settings.lr), np.random.default_rng(seed)

    def run():
        for _ in range(steps):
            batch = task.examples(task.settings.batch, rng)
            x, y = torch.tensor([b for b, _ in batch]), torch.tensor([t for _, t in batch])
            _, loss = net(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), task.settings.clip)
            opt.step()
    return run


def per_step(task: Task, rounds: int, steps: int) -> None:
    trainer, other = Trainer(task), torch_steps(task, steps)
    trainer.step()
    other()  # (warm: the first steps allocate)
    ratios, ours, theirs = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        t1 = time.perf_counter()
        other()
        t2 = time.perf_counter()
        ours.append((t1 - t0) / steps)
        theirs.append((t2 - t1) / steps)
        ratios.append(ours[-1] / theirs[-1])
    print(f"{task.name}: a step of batch {task.settings.batch}: numpy {min(ours) * 1e3:.0f}-{max(ours) * 1e3:.0f} ms, "
          f"torch {min(theirs) * 1e3:.0f}-{max(theirs) * 1e3:.0f} ms; numpy / torch {min(ratios):.2f}-{max(ratios):.2f}x "
          f"(median {statistics.median(ratios):.2f}x, {rounds} rounds of {steps} steps; target <= 1.5x)")


def to_729(every: int = 50) -> None:
    task = nano_gpt()
    trainer, t0 = Trainer(task), time.perf_counter()
    while trainer.steps_done < task.settings.steps:
        trainer.step()
        if trainer.steps_done % every == 0 and sort_accuracy(trainer.model) == 1.0:
            print(f"nano-gpt from random weights, numpy: 729 of 729 sorted at step {trainer.steps_done}, "
                  f"{time.perf_counter() - t0:.1f} s (target: under 5 minutes)")
            return
    print(f"nano-gpt: not 729 of 729 after {trainer.steps_done} steps ({sort_accuracy(trainer.model):.2%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--full", action="store_true", help="also shakespeare-char's whole run (about 20 minutes)")
    args = ap.parse_args()
    text = "".join(np.random.default_rng(0).choice(list(CHARS), 300_000))
    chars = shakespeare_char(text=text)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    per_step(nano_gpt(), args.rounds, args.steps)
    per_step(chars, args.rounds, max(2, args.steps // 5))
    to_729()
    if args.full:
        trainer, t0 = Trainer(chars), time.perf_counter()
        for _ in range(chars.settings.steps):
            trainer.step()
        print(f"shakespeare-char, {chars.settings.steps} steps in numpy: {(time.perf_counter() - t0) / 60:.1f} min "
              f"(target: under 30 minutes)")


if __name__ == "__main__":
    main()
