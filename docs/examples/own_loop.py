"""Your own training loop and a plain PyTorch model, recorded by grokscope (docs/recorder.md).

    python docs/examples/own_loop.py --out checkpoints/own-loop     # ~20 s on 2 CPU cores
    grokscope analyze checkpoints/own-loop                           # every probe that fits
"""
import argparse

import torch
from torch import nn

import grokscope


class Net(nn.Module):
    """Embeddings of a and b, concatenated, through one ReLU layer; logits over the p answers."""

    def __init__(self, p: int = 53, d: int = 64, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(p + 1, d)
        self.mlp = nn.Sequential(nn.Linear(2 * d, hidden), nn.ReLU(), nn.Linear(hidden, p))

    def forward(self, x):                # x: (batch, 3) tokens a, b, "="
        return self.mlp(self.embed(x[:, :2]).flatten(1))


def main(out: str, steps: int) -> None:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1.0)
    with grokscope.Recorder(out, model, task={"name": "modular", "p": 53, "frac_train": 0.5}, steps=steps,
                            config={"optim": {"lr": 3e-3, "weight_decay": 1.0}},
                            hooks="embed=embed,unembed=mlp.2,hook_embed=embed,blocks.0.mlp.hook_post=mlp.1") as rec:
        x, y, xt, yt = rec.task.train_inputs, rec.task.train_labels, rec.task.test_inputs, rec.task.test_labels
        for step in range(steps + 1):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            if rec.wants(step):
                rec.checkpoint(step, model)
            with torch.no_grad():
                test_logits = model(xt)
            rec.log(step, train_loss=loss, train_acc=(logits.argmax(-1) == y).float().mean(),
                    test_loss=nn.functional.cross_entropy(test_logits, yt),
                    test_acc=(test_logits.argmax(-1) == yt).float().mean())
            if step < steps:
                opt.zero_grad()
                loss.backward()
                opt.step()


if __name__ == "__main__":           # grokscope imports this file to build Net again: keep the guard
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="checkpoints/own-loop")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    main(args.out, args.steps)
