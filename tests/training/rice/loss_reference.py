"""Independent float64 transcription of the RICE loss forms: one row, one centre at a time.

Written from the formulas (RICE Eq. 3/4; margin softmax with Partial FC as released), not from
training/rice/loss*.py. ``draws`` restricts each draw to the given centres (Partial FC); by default
every centre is drawn.
"""

from __future__ import annotations

import math

import torch


def margin(cos, m, kind):
    if kind == "additive-cosine":
        return cos - m
    theta = torch.acos(cos)
    return torch.cos(theta + m) if theta + m < math.pi else cos - math.sin(math.pi - m) * m


def one_problem(f, c, targets, drawn, form, s, m, kind, filt, ref):
    """Loss of one feature ``f`` against centres ``c[drawn]`` with target set ``targets``."""
    cos = {j: (f * c[j]).sum() / (f.norm() * c[j].norm()) for j in drawn}
    logit = {}
    for j in drawn:
        if j in targets:
            continue
        if filt > 0:
            if ref == "feature":
                near = cos[j].item() > filt
            else:  # cosine of centre j to any target centre
                near = any(((c[j] * c[t]).sum() / (c[j].norm() * c[t].norm())).item() > filt for t in targets)
            if near:
                logit[j] = torch.zeros((), dtype=f.dtype)  # zeroed, as in the released code
                continue
        logit[j] = s * cos[j]
    negatives = sum((torch.exp(v) for v in logit.values()), torch.zeros((), dtype=f.dtype))
    if form == "paper":
        pos = sum((torch.exp(-s * margin(cos[t], m, kind)) for t in targets), torch.zeros((), dtype=f.dtype))
        return torch.log1p(pos) + torch.log1p(negatives)
    terms = []
    for t in targets:
        e_t = torch.exp(s * margin(cos[t], m, kind))
        terms.append(torch.log1p(negatives / e_t))  # = -log(e_t / (e_t + Σ)), without cancellation
    return sum(terms) / len(terms)


def reference_loss(feats, centres, labels, form="paper", multilabel="joint", s=64.0, m=0.3,
                   kind="additive-cosine", filt=0.0, ref="feature", draws=None):
    """Mean over rows with a label; ``draws``: list (per draw) of lists of centre ids, else all."""
    everything = list(range(len(centres)))
    total, rows = feats.new_zeros(()), 0
    for i in range(len(feats)):
        positives = sorted({int(y) for y in labels[i] if y >= 0})
        if not positives:
            continue
        if multilabel == "joint":
            drawn = draws[0] if draws else everything
            row = one_problem(feats[i], centres, set(positives), drawn, form, s, m, kind, filt, ref)
        else:  # one problem per label; the row's other positives are ordinary negatives there
            parts = []
            for y in positives:
                drawn = draws[_column_of(labels, i, y)] if draws else everything
                parts.append(one_problem(feats[i], centres, {y}, drawn, form, s, m, kind, filt, ref))
            row = sum(parts) / len(parts)
        total, rows = total + row, rows + 1
    return total / rows


def _column_of(labels, i, y):
    """Column of label ``y`` in row ``i`` once repeats are dropped and the row is sorted (as the loss does)."""
    ordered = sorted(int(v) for v in labels[i])
    seen, cols = set(), []
    for v in ordered:
        cols.append(-1 if v in seen else v)
        seen.add(v)
    return cols.index(y)
