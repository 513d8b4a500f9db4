"""How long zero_shot's token draw takes per student step, against hard Gumbel-softmax in the same run.

A ``gumbel_vocab`` generator scores every vocabulary row at every generated position. Generator
steps need the straight-through Gumbel-softmax (its gradient); student steps only need the tokens,
which :func:`raykd.datafree.samples.sample_tokens` draws from the same distribution by inverse CDF.
Both are timed on the same random scores ``[batch, positions, vocab]``; the ratio is against hard
Gumbel-softmax (the baseline). Run: ``python benchmarks/token_sampling.py [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from raykd.datafree.samples import gumbel_tokens, sample_tokens


def _best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--positions", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=30522, help="rows of the vocabulary (BERT's WordPiece: 30,522)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    logits = torch.randn(args.batch, args.positions, args.vocab)
    special = torch.tensor([0, 100, 101, 102, 103])
    allowed = torch.ones(args.vocab, dtype=torch.bool)
    allowed[special] = False
    with torch.no_grad():
        rows = [
            ("baseline: hard Gumbel-softmax, argmax", _best_ms(lambda: gumbel_tokens(logits, 1.0, allowed).argmax(-1),
                                                               args.repeats)),
            ("raykd student step: inverse-CDF draw", _best_ms(lambda: sample_tokens(logits, special), args.repeats)),
            ("reference: softmax alone", _best_ms(lambda: F.softmax(logits, dim=-1), args.repeats)),
        ]
    print(f"scores [{args.batch}, {args.positions}, {args.vocab}], {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'variant':<42}{'ms':>9}{'ratio':>8}")
    for name, ms in rows:
        print(f"{name:<42}{ms:>9.1f}{ms / rows[0][1]:>8.2f}")
    print("ratio = time / baseline (lower is faster)")


if __name__ == "__main__":
    main()
