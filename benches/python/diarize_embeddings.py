#!/usr/bin/env python3
"""How well the embeddings the diarizer clusters separate voices, and what a linear transform
fitted on the `tune` part does to that on `test`.

Input: the JSON lines of `voxfleet-bench-diarize --split all --dump-embeddings FILE` (one line
per embedded window and local speaker, with the reference speaker who covers most of it).

For each way of scoring (raw unit embeddings; less the background mean of their band; then
within-class whitening, WCCN, or LDA fitted on `tune`'s pure clips) it prints, per split and
part, the same- and different-speaker cosine similarity of pure clips (one reference speaker
covers >= 90 % of the clip; two clips of one speaker >= 10 windows apart) with the equal error
rate, and the speaker count that centroid-linkage clustering of each recording's clips
(>= 2 s of clean speech) finds at the threshold chosen on `tune`, against the number of
reference speakers among those clips.

Two other cues, judged the same way: a second embedding model (dump with `--dump-second v3`
for GE2E; the ways `second`, and `fuseW`, both models centred with cosines weighted W and
1 - W), and pitch (`--pitch-veto`: each clip's median F0 by YIN from the development set's
audio, and clusters whose pitch differs by more than the veto never merged).

Needs numpy (`pip install numpy`). Nothing here is used by the diarizer itself: it is how a
transform is judged before it is built into `voxfleet_speakers::background`.
"""
import argparse
import collections
import json
import sys

import numpy as np

PURE = 0.9
APART = 10
TRAIN_CLEAN_S = 2.0


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            e = np.asarray(r["embedding"], dtype=np.float64)
            n = np.linalg.norm(e)
            if not np.isfinite(n) or n == 0:
                continue
            r["e"] = e / n
            e2 = r.get("embedding2")
            if e2 is not None:
                e2 = np.asarray(e2, dtype=np.float64)
                r["e2"] = e2 / np.linalg.norm(e2)
            r["narrow"] = "phone" in r["part"]
            rows.append(r)
    return rows


def background(rows, key="e"):
    out = {}
    for band in (False, True):
        es = [r[key] for r in rows if r["split"] == "tune" and r["narrow"] == band
              and r["clean_s"] >= TRAIN_CLEAN_S and key in r]
        out[band] = np.mean(es, axis=0) if es else None
    return out


def fit_transform(rows, bg, kind, reg, dims, band):
    """A matrix fitted on `tune`'s pure clips of `band` (classes: one speaker of one
    recording), applied to centred embeddings."""
    by = collections.defaultdict(list)
    for r in rows:
        if (r["split"] == "tune" and r["narrow"] == band and r["purity"] >= PURE
                and r["clean_s"] >= TRAIN_CLEAN_S and r["label"]):
            by[r["label"]].append(r["e"] - bg[band])
    classes = [np.array(v) for v in by.values() if len(v) >= 2]
    d = classes[0].shape[1]
    sw = np.zeros((d, d))
    n = 0
    means = []
    for c in classes:
        m = c.mean(axis=0)
        means.append(m)
        x = c - m
        sw += x.T @ x
        n += len(c)
    sw /= n
    sw += reg * np.trace(sw) / d * np.eye(d)
    w_vals, w_vecs = np.linalg.eigh(sw)
    inv_sqrt = w_vecs @ np.diag(w_vals ** -0.5) @ w_vecs.T
    if kind == "wccn":
        return inv_sqrt
    means = np.array(means)
    sb = np.cov((means - means.mean(axis=0)).T, bias=True)
    m = inv_sqrt @ sb @ inv_sqrt
    vals, vecs = np.linalg.eigh(m)
    order = np.argsort(vals)[::-1][:dims]
    return inv_sqrt @ vecs[:, order]


def scorer(rows, how, args):
    bg = background(rows)
    mats = {}
    if how in ("wccn", "lda"):
        for band in (False, True):
            mats[band] = fit_transform(rows, bg, how, args.reg, args.dims, band)

    if how == "second" or how.startswith("fuse"):
        # The second model (`--dump-second`), centred like the first; `fuseW`: both unit
        # vectors concatenated, the first weighted sqrt(W) and the second sqrt(1-W), so the
        # dot product of two is W * cos1 + (1 - W) * cos2 and centroid linkage still applies.
        bg2 = background(rows, "e2")
        w = 0.0 if how == "second" else float(how[4:])

        def unit(x):
            return x / np.linalg.norm(x)

        def fused(r):
            a = unit(r["e"] - bg[r["narrow"]])
            b = unit(r["e2"] - bg2[r["narrow"]])
            return np.concatenate([np.sqrt(w) * a, np.sqrt(1 - w) * b])
        return fused

    def f(r):
        if how == "raw":
            x = r["e"]
        else:
            x = r["e"] - bg[r["narrow"]]
            if r["narrow"] in mats:
                x = x @ mats[r["narrow"]]
        return x / np.linalg.norm(x)
    return f


def eer(same, diff):
    same, diff = np.sort(same), np.sort(diff)
    best = None
    for t in np.arange(-1, 1.001, 0.01):
        miss = np.searchsorted(same, t) / len(same)
        fa = 1 - np.searchsorted(diff, t) / len(diff)
        if best is None or abs(miss - fa) < best[0]:
            best = (abs(miss - fa), (miss + fa) / 2, t)
    return best[1], best[2]


def yin_pitch(x, sr, fmin=60.0, fmax=400.0):
    """Median F0 of the voiced 40 ms frames (every 10 ms) of `x`, in semitones above 100 Hz,
    by YIN (cumulative mean normalised difference under 0.15, first dip); None with fewer
    than 10 voiced frames. Frames under -40 dBFS RMS are skipped."""
    fl, hop = int(0.04 * sr), int(0.01 * sr)
    tmin, tmax = int(sr / fmax), int(sr / fmin)
    x = np.asarray(x, dtype=np.float64)
    f0 = []
    for i in range(0, len(x) - fl - tmax, hop):
        fr = x[i:i + fl + tmax]
        w = fr[:fl]
        if np.sqrt(np.mean(w ** 2)) < 0.01:
            continue
        c2 = np.concatenate([[0.0], np.cumsum(fr ** 2)])
        d = np.sum(w ** 2) + (c2[fl:fl + tmax + 1] - c2[:tmax + 1]) \
            - 2 * np.correlate(fr, w, "valid")[:tmax + 1]
        cm = np.concatenate([[1.0], d[1:] * np.arange(1, tmax + 1)
                             / np.maximum(np.cumsum(d[1:]), 1e-12)])
        below = np.where(cm[tmin:] < 0.15)[0]
        if len(below) == 0:
            continue
        t = below[0] + tmin
        while t + 1 <= tmax and cm[t + 1] < cm[t]:
            t += 1
        f0.append(sr / t)
    return float(np.median(12 * np.log2(np.array(f0) / 100.0))) if len(f0) >= 10 else None


def add_pitch(rows, devset):
    """Sets each row's `pitch` (yin_pitch of its clip's spans) from the development set's
    audio (16-bit WAV)."""
    import os
    import wave
    items = {it["id"]: it for it in json.load(open(os.path.join(devset, "manifest.json")))["items"]}
    audio = {}
    for r in rows:
        if r["id"] not in audio:
            audio.clear()
            with wave.open(os.path.join(devset, items[r["id"]]["wav"])) as w:
                sr, ch = w.getframerate(), w.getnchannels()
                x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0
                audio[r["id"]] = (x.reshape(-1, ch).mean(axis=1), sr)
        x, sr = audio[r["id"]]
        clip = np.concatenate([x[int(a * sr):int(b * sr)] for a, b in r["spans_s"]])
        r["pitch"] = yin_pitch(clip, sr)


def ahc_count(x, threshold, pitch=None, veto=None):
    """Centroid linkage on unit vectors (cosine distance of the members' mean), as
    voxfleet_speakers::cluster does by default; returns the labels. With `veto`, two
    clusters whose members' median `pitch` differ by more than `veto` semitones are never
    merged."""
    clusters = [[i] for i in range(len(x))]
    sums = [x[i].copy() for i in range(len(x))]
    while len(clusters) > 1:
        c = np.array([s / np.linalg.norm(s) for s in sums])
        sim = c @ c.T
        np.fill_diagonal(sim, -np.inf)
        if veto is not None:
            med = np.array([np.median([pitch[k] for k in cl if pitch[k] is not None])
                            if any(pitch[k] is not None for k in cl) else np.nan
                            for cl in clusters])
            sim[np.abs(med[:, None] - med[None, :]) > veto] = -np.inf
        i, j = np.unravel_index(np.argmax(sim), sim.shape)
        if not np.isfinite(sim[i, j]) or 1 - sim[i, j] > threshold:
            break
        i, j = min(i, j), max(i, j)
        clusters[i] += clusters[j]
        sums[i] = sums[i] + sums[j]
        del clusters[j], sums[j]
    return clusters


def group(rows):
    by = collections.defaultdict(list)
    for r in rows:
        by[r["id"]].append(r)
    return by


def counts(rows, f, threshold, veto=None):
    """(part, right count?) per recording."""
    out = []
    for rid, rs in group(rows).items():
        train = [r for r in rs if r["clean_s"] >= TRAIN_CLEAN_S] or rs
        truth = {r["label"] for r in train if r["label"] and r["purity"] >= 0.5}
        x = np.array([f(r) for r in train])
        found = len(ahc_count(x, threshold, [r.get("pitch") for r in train], veto))
        out.append((rs[0]["split"], rs[0]["part"], found == len(truth), found - len(truth)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dump")
    p.add_argument("--reg", type=float, default=0.1,
                   help="within-class covariance + reg * mean variance * I")
    p.add_argument("--dims", type=int, default=64, help="LDA dimensions kept")
    p.add_argument("--ways", default="raw,centred,wccn,lda",
                   help="also: second (the --dump-second model, centred), fuseW (both, "
                   "centred, cosines weighted W and 1-W, e.g. fuse0.7)")
    p.add_argument("--thresholds", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7")
    p.add_argument("--no-count", action="store_true")
    p.add_argument("--pitch-veto", default="",
                   help="also count with these pitch vetoes (semitones, comma-separated): "
                   "clusters whose median F0 differ by more are never merged; needs --devset")
    p.add_argument("--devset", help="the development set's folder (for --pitch-veto)")
    args = p.parse_args()
    rows = load(args.dump)
    vetoes = [None] + [float(v) for v in args.pitch_veto.split(",") if v]
    if len(vetoes) > 1:
        if not args.devset:
            p.error("--pitch-veto needs --devset")
        add_pitch(rows, args.devset)
    print(f"{len(rows)} embeddings, {len(group(rows))} recordings", file=sys.stderr)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    for how in args.ways.split(","):
        f = scorer(rows, how, args)
        print(f"== {how}")
        pairs = collections.defaultdict(lambda: ([], []))
        for rid, rs in group(rows).items():
            pure = [r for r in rs if r["purity"] >= PURE and r["clean_s"] >= TRAIN_CLEAN_S]
            xs = [f(r) for r in pure]
            key = (rs[0]["split"], rs[0]["part"])
            for i in range(len(pure)):
                for j in range(i + 1, len(pure)):
                    s = float(xs[i] @ xs[j])
                    if pure[i]["label"] == pure[j]["label"]:
                        if abs(pure[i]["window"] - pure[j]["window"]) >= APART:
                            pairs[key][0].append(s)
                    else:
                        pairs[key][1].append(s)
        for key in sorted(pairs):
            same, diff = pairs[key]
            if same and diff:
                e, at = eer(same, diff)
                print(f"  {key[0]:5} {key[1]:22} same p10 {np.percentile(same, 10):5.2f} "
                      f"diff p90 {np.percentile(diff, 90):5.2f}  EER {100 * e:5.1f} % at {at:5.2f}")
        if args.no_count:
            continue
        for veto, band in ((v, b) for v in vetoes for b in (False, True)):
            sel = [r for r in rows if r["narrow"] == band]
            table = {t: counts(sel, f, t, veto) for t in thresholds}
            tune_right = {t: sum(c[2] for c in table[t] if c[0] == "tune") for t in thresholds}
            best = max(thresholds, key=lambda t: tune_right[t])
            print(f"  {'narrow' if band else 'wide'}band"
                  + (f", pitch veto {veto} st" if veto is not None else "")
                  + ": tune right counts by threshold "
                  + ", ".join(f"{t}: {tune_right[t]}" for t in thresholds) + f"; chosen {best}")
            per = collections.defaultdict(lambda: [0, 0, 0, 0])
            for split, part, right, diff in table[best]:
                k = per[(split, part)]
                k[0] += right
                k[1] += 1
                k[2] += diff < 0
                k[3] += diff > 0
            for key in sorted(per):
                r, n, lo, hi = per[key]
                print(f"    {key[0]:5} {key[1]:22} {r}/{n} right ({lo} too few, {hi} too many)")


if __name__ == "__main__":
    main()
