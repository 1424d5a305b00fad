#!/usr/bin/env python3
"""Torch-free converter: Resemblyzer GE2E speaker encoder (PyTorch checkpoint) -> ONNX.

Needs only numpy + onnx (and onnxruntime for --check / --espeak). Never imports torch.

Usage:
    python resemblyzer_ge2e.py CHECKPOINT OUT.onnx [--check] [--espeak]

Checkpoint tested: PyPI Resemblyzer==0.1.4 wheel, resemblyzer/pretrained.pt
    17,090,379 B, sha256 39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e
    It is in torch's *legacy* (pre-1.6, non-zip) serialization format: a dict
    {"step": int, "model_state": OrderedDict, "optimizer_state": ...}. Both that and the
    zip format are read here; wrapped ("model_state" / "state_dict") or plain state dicts.
    Resemblyzer loads it with strict=False; its state dict also holds GE2E training-only
    tensors (similarity_weight / similarity_bias) that are ignored here.

Network (resemblyzer/voice_encoder.py, hparams.py):
    nn.LSTM(40, 256, num_layers=3, batch_first=True) -> h_n of the top layer [B,256]
    -> nn.Linear(256,256) -> ReLU -> divide by L2 norm (no epsilon: an all-zero ReLU
    output would give NaN in torch too).

Graph (opset 17):
    mels [B, T, 40] float32 (dynamic B, T >= 1)  ->  embs [B, 256] float32, unit L2 norm,
    all components >= 0 (so cosine similarities lie in [0, 1]).
    Every item of a batch runs for the full T steps: batch equal-length partials
    (zero-padding changes the final hidden state).

Front end expected on `mels` (resemblyzer/audio.py wav_to_mel_spectrogram + hparams.py):
    16 kHz mono float waveform in [-1, 1]; Resemblyzer's preprocess_wav first scales the
    volume up (only up) to -30 dBFS RMS and trims long silences with webrtcvad (mode 3,
    30 ms windows, moving average 8, dilation 7 windows).
    librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40)
    with librosa defaults: win_length = n_fft = 400 (25 ms), hop 160 (10 ms), periodic Hann
    window, center=True (n_fft//2 = 200 samples of padding each side; pad_mode 'constant'
    = zeros in librosa >= 0.10, 'reflect' in older librosa), power=2.0 (power spectrum,
    201 rfft bins), mel filterbank librosa.filters.mel(sr=16000, n_fft=400, n_mels=40,
    fmin=0, fmax=8000, htk=False (Slaney mel scale), norm='slaney' (area-normalised)).
    NOT log-compressed, no mean normalisation. Output transposed to [T, 40] float32;
    frames = 1 + len(wav)//160. Resemblyzer embeds partials of 160 frames (1.6 s) taken
    every round(16000/1.3/160) = 77 frames (rate 1.3/s), the last kept if it covers >= 75 %
    (zero-padding the wav), then averages the partial embeddings and re-normalises.
    `wav_to_mel` below is a numpy-only replica of this (used by --espeak; own Slaney mel
    filterbank, rfft of periodic-Hann frames, zero centre padding). Checked against
    librosa 0.11.0 (separate venv, not needed here): filterbank max abs diff 7e-10,
    melspectrogram max relative diff 1.8e-7 on random wavs of 16000/25613/40000 samples.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchless import finish_model, save_model, state_dict, torch_to_onnx_gates  # noqa: E402

N_MELS = 40
HIDDEN = 256
EMB = 256
LAYERS = 3
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
PARTIAL_FRAMES = 160

def load_state_dict(path, verbose=True):
    sd = state_dict(path)
    if verbose:
        print(f"state dict: {len(sd)} tensors")
        for k, v in sd.items():
            print(f"  {k:25s} {str(v.dtype):8s} {tuple(v.shape)}")
    for k in range(LAYERS):
        assert sd[f"lstm.weight_ih_l{k}"].shape == (4 * HIDDEN, N_MELS if k == 0 else HIDDEN)
        assert sd[f"lstm.weight_hh_l{k}"].shape == (4 * HIDDEN, HIDDEN)
    assert f"lstm.weight_ih_l{LAYERS}" not in sd
    assert sd["linear.weight"].shape == (EMB, HIDDEN)
    return sd


# ---------------------------------------------------------------------------
# 2. ONNX graph
# ---------------------------------------------------------------------------


def build_onnx(sd):
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, inputs, name, n_out=1, **attrs):
        outs = [name] if n_out == 1 else [f"{name}.{j}" for j in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    H = HIDDEN
    x = node("Transpose", ["mels"], "to_seq", perm=[1, 0, 2])  # [T, B, 40]
    for k in range(LAYERS):
        wih = sd[f"lstm.weight_ih_l{k}"].astype(np.float32)
        whh = sd[f"lstm.weight_hh_l{k}"].astype(np.float32)
        bih = sd[f"lstm.bias_ih_l{k}"].astype(np.float32)
        bhh = sd[f"lstm.bias_hh_l{k}"].astype(np.float32)
        W = torch_to_onnx_gates(wih, H)[None]
        R = torch_to_onnx_gates(whh, H)[None]
        B = np.concatenate([torch_to_onnx_gates(bih, H), torch_to_onnx_gates(bhh, H)])[None]
        y, y_h = node("LSTM", [x, const(f"lstm{k}.W", W), const(f"lstm{k}.R", R),
                               const(f"lstm{k}.B", B)],
                      f"lstm{k}", n_out=2, hidden_size=H, direction="forward")
        # Y [T, 1, B, H] -> [T, B, H]
        x = node("Squeeze", [y, const(f"lstm{k}.axes", np.array([1], np.int64))], f"lstm{k}.out")
    # Y_h of the top layer: [1, B, H] -> [B, H]  (== torch hidden[-1])
    h = node("Squeeze", [y_h, const("h_axes", np.array([0], np.int64))], "h_last")
    Wl = sd["linear.weight"].astype(np.float32)
    bl = sd["linear.bias"].astype(np.float32)
    x = node("Gemm", [h, const("linear.W", Wl), const("linear.b", bl)], "linear", transB=1)
    x = node("Relu", [x], "relu")
    n = node("ReduceL2", [x], "l2", axes=[1], keepdims=1)  # opset 17: axes is an attribute
    nodes.append(helper.make_node("Div", [x, n], ["embs"], name="normalize"))

    graph = helper.make_graph(
        nodes, "resemblyzer_ge2e",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("embs", TensorProto.FLOAT, ["batch", EMB])],
        inits,
    )
    return finish_model(graph, "voxfleet-resemblyzer-ge2e-converter", full_check=True)


# ---------------------------------------------------------------------------
# 3. Independent numpy float64 forward pass (torch semantics, torch gate order)
# ---------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_forward(sd, mels):
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = mels.astype(np.float64)  # [B, T, 40]
    Bn, T, _ = x.shape
    H = HIDDEN
    for k in range(LAYERS):
        wih, whh = sd[f"lstm.weight_ih_l{k}"], sd[f"lstm.weight_hh_l{k}"]
        pre = x @ wih.T + sd[f"lstm.bias_ih_l{k}"] + sd[f"lstm.bias_hh_l{k}"]
        h = np.zeros((Bn, H))
        c = np.zeros((Bn, H))
        out = np.zeros((Bn, T, H))
        for t in range(T):
            g = pre[:, t] + h @ whh.T
            i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
            h = _sigmoid(o) * np.tanh(c)
            out[:, t] = h
        x = out
    e = np.maximum(h @ sd["linear.weight"].T + sd["linear.bias"], 0.0)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# 4. numpy-only replica of resemblyzer.audio.wav_to_mel_spectrogram
# ---------------------------------------------------------------------------


def _hz_to_mel(f):  # Slaney (librosa htk=False)
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                    f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=None):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney')."""
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def wav_to_mel(wav, pad_mode="constant"):
    """[N] float waveform at 16 kHz -> [1 + N//160, 40] float32 power-mel frames."""
    wav = np.asarray(wav, np.float64)
    y = np.pad(wav, N_FFT // 2, mode=pad_mode)
    n_frames = 1 + (len(y) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    spec = np.abs(np.fft.rfft(y[idx] * window, n=N_FFT, axis=1)) ** 2  # [T, 201]
    return (spec @ mel_filterbank().T).astype(np.float32)


def normalize_volume(wav, target_dbfs=-30.0):
    """resemblyzer.audio.normalize_volume(..., increase_only=True)."""
    rms = np.sqrt(np.mean((wav * 32767.0) ** 2))
    change = target_dbfs - 20 * np.log10(rms / 32767.0)
    return wav if change < 0 else wav * (10 ** (change / 20))


def partial_mels(wav, rate=1.3, min_coverage=0.75):
    """VoiceEncoder.compute_partial_slices + padding, returns [n, 160, 40]."""
    n_samples = len(wav)
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / rate) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * HOP
    if (n_samples - last) / (PARTIAL_FRAMES * HOP) < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    need = (starts[-1] + PARTIAL_FRAMES) * HOP
    if need >= n_samples:
        wav = np.pad(wav, (0, need - n_samples))
    mel = wav_to_mel(wav)
    return np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])


# ---------------------------------------------------------------------------
# 5. checks
# ---------------------------------------------------------------------------


def self_check(sd, out_path):
    import onnxruntime as ort

    sess = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1234)
    ok = True
    for T in (160, 37):
        # non-negative, power-mel-like magnitudes
        mels = (rng.random((2, T, N_MELS)) ** 3 * 2.0).astype(np.float32)
        (got,) = sess.run(["embs"], {"mels": mels})
        ref = numpy_forward(sd, mels)
        diff = float(np.max(np.abs(got - ref)))
        norm_err = float(np.max(np.abs(np.linalg.norm(got, axis=1) - 1.0)))
        print(f"check: T={T:3d} B=2 embs {got.shape}, max |onnx - numpy64| = {diff:.3e}, "
              f"max |norm - 1| = {norm_err:.3e}, min component = {got.min():.3e}")
        ok &= got.shape == (2, EMB) and diff < 1e-4 and norm_err < 1e-5 and got.min() >= 0
    print("check:", "PASS" if ok else "FAIL")
    return ok


def _espeak_wav(text, voice):
    with tempfile.NamedTemporaryFile(suffix=".wav") as tf:
        subprocess.run(["espeak-ng", "-v", voice, "-w", tf.name, text], check=True)
        with wave.open(tf.name) as w:
            sr = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32768.0
    # linear-interpolation resample to 16 kHz (espeak-ng writes 22050 Hz)
    n = int(round(len(pcm) * SAMPLE_RATE / sr))
    wav = np.interp(np.arange(n) * sr / SAMPLE_RATE, np.arange(len(pcm)), pcm)
    # crude stand-in for webrtcvad trimming: drop leading/trailing 10 ms blocks below -50 dBFS
    blocks = wav[: len(wav) // HOP * HOP].reshape(-1, HOP)
    loud = np.where(np.sqrt((blocks ** 2).mean(axis=1)) > 10 ** (-50 / 20))[0]
    wav = wav[loud[0] * HOP:(loud[-1] + 1) * HOP]
    return normalize_volume(wav)


def espeak_demo(out_path):
    import onnxruntime as ort

    sess = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    texts = ["The quick brown fox jumps over the lazy dog while the farmer watches from the barn.",
             "Please call Stella and ask her to bring these things with her from the store today."]
    embs = {}
    for voice in ("en", "en-us+f3"):
        for j, text in enumerate(texts):
            parts = partial_mels(_espeak_wav(text, voice))
            (pe,) = sess.run(["embs"], {"mels": parts})
            e = pe.mean(axis=0)
            embs[(voice, j)] = e / np.linalg.norm(e)
            print(f"espeak: voice {voice:9s} text {j}: {parts.shape[0]} partials of 1.6 s")
    keys = list(embs)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            same = "same" if keys[a][0] == keys[b][0] else "diff"
            cos = float(embs[keys[a]] @ embs[keys[b]])
            print(f"espeak: {same} voice  {keys[a]} vs {keys[b]}: cos = {cos:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--check", action="store_true", help="verify with onnxruntime vs numpy float64 forward")
    ap.add_argument("--espeak", action="store_true",
                    help="embed two espeak-ng voices with the numpy mel front end, print cosines")
    args = ap.parse_args()

    sd = load_state_dict(args.checkpoint)
    model = build_onnx(sd)
    save_model(model, args.output)

    if args.check and not self_check(sd, args.output):
        sys.exit(1)
    if args.espeak:
        espeak_demo(args.output)


if __name__ == "__main__":
    main()
