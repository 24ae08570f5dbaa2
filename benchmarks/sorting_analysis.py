"""How nano-gpt sorts: the measurements the walkthrough's chapter 13 (views/chapters/13-how-it-sorts.md) and the
README's "How nano-gpt sorts" rest on. Not a test and not a timing: it prints tables.

    python benchmarks/sorting_analysis.py [--quick]

nano-gpt reads six letters from {A, B, C} and writes them sorted; its context is 11 tokens, the six and the first five
letters of the answer, and position 5 + j writes letter j + 1. Every table is over all 3^6 = 729 inputs, each with
its correct answer so far (teacher forcing; all six letters right is the same as greedy decoding writing the whole
answer right). Accuracy with edits is walkthrough.sort_results, the function the chapter's {{sort_accuracy}}
templates print (a `mean` is over the positions of each letter's own pass, as the page's edit makes it).

 1. accuracy, per letter of the answer, with each head and each MLP zeroed or mean-ablated (core/edits.py's forms),
    and with each head resample-ablated (its hook_z patched from another random input's pass);
 2. groups: a layer's heads, every head, all heads but one, an MLP at the input's or the answer's positions, the
    embeddings of the letters already written, the position embedding of the position that writes;
 3. what the heads look at: per head and writing position, the mean score given to an input A minus an input C,
    the attention on letters already written, and the attention on the input letters equal to the letter to write
    next against their share of the input; head 0.0's top key at positions 5 and 10;
 4. activation patching: every head's output (or one layer's heads') at the writing position, taken from another
    input with the same current token and another next letter: how often the model writes the other input's letter;
 5. the letter counts (A's and B's in the input) read off each layer's attention output at the writing position by
    a least-squares line, fitted on half the inputs and scored (R^2) on the other half;
 6. direct logit attribution: the final logit of the right letter minus the mean of the other two, split into the
    embeddings, each head, each attention bias, each MLP, through ln_final with its scale (sigma) frozen;
 7. the logit lens (ln_final and W_U on the stream after each half-layer): how often its top letter is right;
 8. the letters already written replaced by random ones: how often the model still writes the right next letter.
First (0) what the chapter costs the walkthrough: compiling it for nano-gpt on CBABBC the first time in a process (its
{{sort_accuracy}} worked out), again (kept), and the walkthrough without the chapter (the baseline), in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import llmviz
from llmviz.views.walkthrough import CHAPTERS, compile_chapters, sort_results

LETTERS = "ABC"
N, K = 6, 6  # input letters, answer letters


def row(name: str, ok: np.ndarray) -> str:
    return f"{name:44s}" + "".join(f"{x:8.1%}" for x in ok.mean(0)) + f"{ok.all(1).mean():9.1%}"


def header(title: str) -> None:
    print(f"\n{title}\n{'':44s}" + "".join(f"{'letter ' + str(j + 1):>8s}" for j in range(K)) + f"{'answer':>9s}")


def head(layer: int, h: int | None = None, kind="zero") -> dict:
    e: dict = {"tensor": f"blocks.{layer}.attn.hook_z", "set": kind}
    if h is not None:
        e["where"] = {"head": h}
    return e


def mlp(layer: int, kind="zero", pos=None) -> dict:
    return {"tensor": f"blocks.{layer}.hook_mlp_out", "set": kind, **({"where": {"pos": pos}} if pos else {})}


def full_text(ids) -> str:
    """An input and its answer's first five letters: the 11 tokens whose positions 5..10 write letters 1..6."""
    return "".join(LETTERS[i] for i in ids) + "".join(sorted(LETTERS[i] for i in ids))[:K - 1]


def ablations(m, quick: bool) -> None:
    header("1. accuracy with one part removed (zero: its output 0; mean: its output's mean over the pass's positions)")
    print(row("clean", sort_results(m, [])))
    kinds = ["zero"] if quick else ["zero", "mean"]
    for kind in kinds:
        for L in range(3):
            for h in range(3):
                print(row(f"{kind} head {L}.{h}", sort_results(m, [head(L, h, kind)])))
            print(row(f"{kind} MLP {L}", sort_results(m, [mlp(L, kind)])))
    if quick:
        return
    rng = np.random.default_rng(0)
    inputs = list(itertools.product(range(3), repeat=N))
    for L in range(3):
        for h in range(3):  # resample: the head's output from another input's pass, everywhere
            ok = np.zeros((len(inputs), K), bool)
            for i, ids in enumerate(inputs):
                other = inputs[rng.integers(len(inputs))]
                e = [{"tensor": f"blocks.{L}.attn.hook_z", "where": {"head": h}, "set": {"from_text": full_text(other)}}]
                pred = m.run(full_text(ids), keep=(), edits=e).predicted_ids[N - 1:]
                ok[i] = np.equal(pred, sorted(ids))
            print(row(f"resample head {L}.{h}", ok))


def groups(m) -> None:
    header("2. accuracy with groups removed")
    for L in range(3):
        print(row(f"zero every head of layer {L}", sort_results(m, [head(L)])))
    print(row("zero every head", sort_results(m, [head(L) for L in range(3)])))
    for keep in itertools.product(range(3), range(3)):
        others = [head(L, h) for L in range(3) for h in range(3) if (L, h) != keep]
        print(row(f"zero every head but {keep[0]}.{keep[1]}", sort_results(m, others)))
    for L in range(3):
        print(row(f"zero MLP {L} at the input's positions 0-5", sort_results(m, [mlp(L, pos=[0, 5])])))
        print(row(f"zero MLP {L} at the answer's positions 6-10", sort_results(m, [mlp(L, pos=[6, 10])])))
    for L in range(3):
        others = [mlp(x) for x in range(3) if x != L]
        print(row(f"zero every MLP but MLP {L}", sort_results(m, others)))
    print(row("zero every MLP", sort_results(m, [mlp(L) for L in range(3)])))
    print(row("zero the token emb. of letters written (6-10)",
              sort_results(m, [{"tensor": "hook_embed", "where": {"pos": [6, 10]}, "set": "zero"}])))
    print(row("zero the position emb. of positions 6-10",
              sort_results(m, [{"tensor": "hook_pos_embed", "where": {"pos": [6, 10]}, "set": "zero"}])))
    print(row("zero the position emb. of the writing position",
              sort_results(m, [{"tensor": "hook_pos_embed", "where": {"pos": "last"}, "set": "zero"}])))
    print(row("zero the token emb. of the writing position",
              sort_results(m, [{"tensor": "hook_embed", "where": {"pos": "last"}, "set": "zero"}])))


def passes(m):
    """Every input's clean 11-token pass: the tokens [729, 11] and the tensors asked for, stacked."""
    inputs = list(itertools.product(range(3), repeat=N))
    seqs = np.array([list(ids) + sorted(ids)[:K - 1] for ids in inputs])
    names = ([f"blocks.{L}.attn.{n}" for L in range(3) for n in ("hook_pattern", "hook_attn_scores", "hook_z")]
             + [f"blocks.{L}.hook_{n}" for L in range(3) for n in ("attn_out", "mlp_out", "resid_mid", "resid_post")]
             + ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "ln_final.hook_scale", "logits"])
    got: dict[str, list] = {n: [] for n in names}
    for s in seqs:
        tr = m.run(s.tolist(), keep=names)
        for n in names:
            got[n].append(tr[n])
    return seqs, {n: np.stack(v) for n, v in got.items()}


def attention(seqs, t) -> None:
    print("\n3. what the heads look at, at each writing position (mean over the inputs)")
    target = np.concatenate([seqs[:, N:], np.sort(seqs[:, :N], 1)[:, -1:]], 1)  # the letter each position writes
    has_ac = (seqs[:, :N] == 0).any(1) & (seqs[:, :N] == 2).any(1)
    print("   score(A) - score(C): the mean pre-softmax score of an input A minus an input C (inputs with both)")
    print("   written: attention on the letters already written; next: share of the input's attention on letters equal"
          "\n   to the one to write next / that letter's share of the input (inputs with another letter too)")
    print(f"{'':10s}" + "".join(f"{'position ' + str(q):>26s}" for q in range(N - 1, N + K - 1)))
    for L in range(3):
        sc, pat = t[f"blocks.{L}.attn.hook_attn_scores"], t[f"blocks.{L}.attn.hook_pattern"]
        for h in range(3):
            cells = []
            for j, q in enumerate(range(N - 1, N + K - 1)):
                s = sc[has_ac, h, q, :N]
                tok = seqs[has_ac, :N]
                gap = np.mean([s[i][tok[i] == 0].mean() - s[i][tok[i] == 2].mean() for i in range(len(s))])
                written = pat[:, h, q, N:q + 1].sum(1).mean()
                sel = (seqs[:, :N] != target[:, j:j + 1]).any(1)
                p = pat[sel, h, q, :N]
                on = ((p * (seqs[sel, :N] == target[sel, j:j + 1])).sum(1) / p.sum(1)).mean()
                share = (seqs[sel, :N] == target[sel, j:j + 1]).mean()
                cells.append(f"{gap:+5.1f} {written:4.2f} {on:4.2f}/{share:4.2f}")
            print(f"head {L}.{h}  " + "".join(f"{c:>26s}" for c in cells))
    pat = t["blocks.0.attn.hook_pattern"][:, 0]
    lo, hi = seqs[:, :N].min(1), seqs[:, :N].max(1)
    top5 = (seqs[np.arange(len(seqs)), pat[:, N - 1, :N].argmax(1)] == lo).mean()
    top10 = (seqs[np.arange(len(seqs)), pat[:, N + K - 2, :N].argmax(1)] == hi).mean()
    mass5 = np.mean([pat[i, N - 1, :N][seqs[i, :N] == lo[i]].sum() for i in range(len(seqs))])
    mass10 = np.mean([pat[i, N + K - 2, :N][seqs[i, :N] == hi[i]].sum() for i in range(len(seqs))])
    print(f"head 0.0 at position 5: its top key is the input's smallest letter in {top5:.1%} of the inputs, "
          f"{mass5:.1%} of its attention on it")
    print(f"head 0.0 at position 10: its top key is the input's largest letter in {top10:.1%}, {mass10:.1%} of its "
          "attention on it")


def patching(m, quick: bool) -> None:
    print("\n4. every head's output at the writing position taken from another input (same current token, another "
          "next letter):\n   how often the model writes the other input's letter / its own")
    rng = np.random.default_rng(1)
    inputs = ["".join(p) for p in itertools.product(LETTERS, repeat=N)]
    sets = {"every head": [0, 1, 2], "layer 0's heads": [0], "layer 1's heads": [1], "layer 2's heads": [2]}
    print(f"{'':10s}" + "".join(f"{k:>22s}" for k in sets))
    for j in range(K):
        q, pairs = N - 1 + j, list[tuple[str, str]]()
        while len(pairs) < (40 if quick else 150):
            a, b = (x + "".join(sorted(x))[:K - 1] for x in rng.choice(inputs, 2))
            if a[q] == b[q] and sorted(a[:N])[j] != sorted(b[:N])[j]:
                pairs.append((a, b))
        cells = []
        for layers in sets.values():
            src = dst = 0
            for a, b in pairs:
                e = [{"tensor": f"blocks.{L}.attn.hook_z", "where": {"pos": q}, "set": {"from_text": b}} for L in layers]
                p = LETTERS[m.run(a, keep=(), edits=e).predicted_ids[q]]
                src, dst = src + (p == sorted(b[:N])[j]), dst + (p == sorted(a[:N])[j])
            cells.append(f"{src / len(pairs):.0%} / {dst / len(pairs):.0%}")
        print(f"letter {j + 1}  " + "".join(f"{c:>22s}" for c in cells))


def counts(seqs, t) -> None:
    print("\n5. the input's counts of A and of B read off by a line (R^2 on held-out inputs), at each writing position")
    y = np.stack([(seqs[:, :N] == 0).sum(1), (seqs[:, :N] == 1).sum(1)], 1).astype(float)
    half = np.random.default_rng(2).permutation(len(seqs))
    fit, test = half[: len(half) // 2], half[len(half) // 2:]
    for name in ["hook_embed", "blocks.0.hook_resid_pre"] + [f"blocks.{L}.hook_attn_out" for L in range(3)] \
            + [f"blocks.{L}.hook_resid_post" for L in range(3)]:
        cells = []
        for q in range(N - 1, N + K - 1):
            x = np.c_[t[name][:, q], np.ones(len(seqs))]
            w, *_ = np.linalg.lstsq(x[fit], y[fit], rcond=None)
            err = ((x[test] @ w - y[test]) ** 2).sum(0) / ((y[test] - y[test].mean(0)) ** 2).sum(0)
            cells.append(f"{1 - err[0]:.2f}/{1 - err[1]:.2f}")
        print(f"{name:28s}" + "".join(f"{c:>11s}" for c in cells))


def attribution(m, seqs, t) -> None:
    header("6. direct logit attribution: logit(right letter) - mean(other two), sigma frozen (mean over the inputs)")
    W = m.weights
    parts = {"token embedding": t["hook_embed"], "position embedding": t["hook_pos_embed"]}
    for L in range(3):
        for h in range(3):
            parts[f"head {L}.{h}"] = t[f"blocks.{L}.attn.hook_z"][:, :, h] @ W[f"blocks.{L}.attn.W_O"][h]
    for L in range(3):
        parts[f"attention bias {L}"] = np.broadcast_to(W[f"blocks.{L}.attn.b_O"], t["hook_embed"].shape)
    for L in range(3):
        parts[f"MLP {L}"] = t[f"blocks.{L}.hook_mlp_out"]
    total = sum(parts.values())
    assert np.allclose(total, t["blocks.2.hook_resid_post"], atol=1e-4)
    sigma = t["ln_final.hook_scale"][..., None]
    target = np.concatenate([seqs[:, N:], np.sort(seqs[:, :N], 1)[:, -1:]], 1)
    out = {}
    for name, x in parts.items():
        logits = ((x - x.mean(-1, keepdims=True)) / sigma * W["ln_final.w"]) @ W["unembed.W_U"]  # [input, pos, vocab]
        logits = logits[:, N - 1:]
        right = np.take_along_axis(logits, target[..., None], 2)[..., 0]
        out[name] = right - (logits.sum(-1) - right) / 2
    const = W["ln_final.b"] @ W["unembed.W_U"]
    check = sum(out.values()) + (const[target] - (const.sum() - const[target]) / 2)
    real = t["logits"][:, N - 1:]
    right = np.take_along_axis(real, target[..., None], 2)[..., 0]
    assert np.allclose(check, right - (real.sum(-1) - right) / 2, atol=1e-3)  # the parts add up to the logits
    for name, v in out.items():
        print(f"{name:44s}" + "".join(f"{x:8.2f}" for x in v.mean(0)))
    print(f"{'(the logits themselves)':44s}" + "".join(f"{x:8.2f}" for x in (right - (real.sum(-1) - right) / 2).mean(0)))


def lens(m, seqs, t) -> None:
    header("7. logit lens: how often the top letter of ln_final(stream) @ W_U is right")
    W = m.weights
    target = np.concatenate([seqs[:, N:], np.sort(seqs[:, :N], 1)[:, -1:]], 1)
    eps = m.config.layer_norm_eps
    for name in ["blocks.0.hook_resid_pre"] + [f"blocks.{L}.hook_resid_{p}" for L in range(3) for p in ("mid", "post")]:
        x = t[name][:, N - 1:]
        x = x - x.mean(-1, keepdims=True)
        x = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * W["ln_final.w"] + W["ln_final.b"]
        ok = (x @ W["unembed.W_U"]).argmax(-1) == target
        print(row(name, ok))


def written(m) -> None:
    header("8. the letters already written replaced by random ones (not the right ones): the next letter right")
    rng = np.random.default_rng(3)
    ok = np.ones((729, K), bool)
    for i, ids in enumerate(itertools.product(range(3), repeat=N)):
        answer = sorted(ids)
        for j in range(1, K):
            while (wrong := rng.integers(0, 3, j).tolist()) == answer[:j]:
                pass
            ok[i, j] = m.run(list(ids) + wrong, keep=()).predicted_ids[-1] == answer[j]
    print(row("random letters written (letter 1 has none)", ok))


def compile_time() -> None:
    print("\n0. compiling the walkthrough for nano-gpt on CBABBC (best of 3 where kept)")
    with tempfile.TemporaryDirectory() as tmp:
        for p in sorted(CHAPTERS.glob("*.md")):
            if p.name != "13-how-it-sorts.md":
                shutil.copy(p, Path(tmp) / p.name)
        m = llmviz.load_model("nano-gpt")  # (run first: nothing is kept for its weights yet)
        trace = m.run("CBABBC")

        def seconds(folder=CHAPTERS) -> float:
            t0 = time.perf_counter()
            compile_chapters(m, trace, folder)
            return time.perf_counter() - t0

        base = min(seconds(Path(tmp)) for _ in range(3))
        first = seconds()
        kept = min(seconds() for _ in range(3))
    print(f"without chapter 13 (baseline): {base * 1000:.0f} ms; with it, the first time in a process: {first:.2f} s "
          f"({first / base:.0f}x); then {kept * 1000:.0f} ms ({kept / base:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="zero ablations only, fewer patching pairs")
    quick = parser.parse_args().quick
    compile_time()  # first: nothing is worked out yet
    m = llmviz.load_model("nano-gpt")
    clean = sort_results(m, [])
    greedy = np.mean([m.generate(ids, K).tokens == sorted(ids) for ids in itertools.product(range(3), repeat=N)])
    print(f"nano-gpt: greedy decoding sorts {greedy:.2%} of the 729 inputs; teacher-forced, every letter right: "
          f"{clean.all(1).mean():.2%}")
    ablations(m, quick)
    groups(m)
    seqs, t = passes(m)
    attention(seqs, t)
    patching(m, quick)
    counts(seqs, t)
    attribution(m, seqs, t)
    lens(m, seqs, t)
    written(m)


if __name__ == "__main__":
    main()
