"""Python peer of voxfleet-bench-speakers: CAM++ speaker embeddings with kaldi-native-fbank and
onnxruntime, timed from inside the interpreter (start-up, imports and model loading excluded).

Launched by the Rust bench (it creates ~/.cache/voxfleet/venv-speakers with
`onnxruntime==1.23.2 kaldi-native-fbank==1.23.0 numpy==2.4.6`); by hand:

    python speaker_embed.py MODEL CLIPS_F32 NUM_CLIPS CLIP_SAMPLES BATCH THREADS REPS OUT_F32

CLIPS_F32 holds NUM_CLIPS clips of CLIP_SAMPLES little-endian f32 samples (16 kHz, [-1, 1]), one
after another. Per clip: Kaldi fbank as voxfleet computes it (samples × 32768, 80 bins, 25/10 ms,
dither 0, snip_edges, Povey window, 20 Hz to Nyquist), per-utterance mean subtraction; then the
ONNX model on batches of BATCH equal-length clips; then L2 normalisation. One warm-up batch, then
REPS timed passes over all clips. THREADS is intra_op_num_threads (0: ONNX Runtime's default,
which is also what voxfleet's session uses). Writes the last pass's embeddings (NUM_CLIPS × D
f32) to OUT_F32 and prints one JSON line with the medians.
"""

import json
import sys
import time

import kaldi_native_fbank as knf
import numpy as np
import onnxruntime as ort


def fbank_options(window):
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = window
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    return opts


def features(opts, clip):
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (clip * 32768.0).tolist())
    fb.input_finished()
    feats = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
    return feats - feats.mean(axis=0, keepdims=True)


def thread_count():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def main():
    model, clips_path, n, samples, batch, threads, reps, out_path = sys.argv[1:9]
    window = sys.argv[9] if len(sys.argv) > 9 else "povey"
    n, samples, batch, threads, reps = int(n), int(samples), int(batch), int(threads), int(reps)
    clips = np.fromfile(clips_path, dtype="<f4").reshape(n, samples)
    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    out = sess.get_outputs()[0].name
    opts = fbank_options(window)

    def embed_all():
        t_fbank = t_onnx = 0.0
        embs = []
        for start in range(0, n, batch):
            t0 = time.perf_counter()
            x = np.stack([features(opts, c) for c in clips[start : start + batch]]).astype(
                np.float32
            )
            t1 = time.perf_counter()
            e = sess.run([out], {inp: x})[0].reshape(x.shape[0], -1)
            e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
            t2 = time.perf_counter()
            t_fbank += t1 - t0
            t_onnx += t2 - t1
            embs.append(e)
        return np.concatenate(embs), t_fbank, t_onnx

    # Warm-up: one batch.
    x = np.stack([features(opts, c) for c in clips[:batch]]).astype(np.float32)
    sess.run([out], {inp: x})
    threads_seen = thread_count()
    walls, fbanks, onnxs = [], [], []
    embs = None
    for _ in range(reps):
        t = time.perf_counter()
        embs, tf, to = embed_all()
        walls.append(time.perf_counter() - t)
        fbanks.append(tf)
        onnxs.append(to)
    embs.astype("<f4").tofile(out_path)
    med = lambda v: sorted(v)[len(v) // 2]
    i = walls.index(med(walls))
    print(
        json.dumps(
            {
                "wall": walls[i],
                "fbank": fbanks[i],
                "onnx": onnxs[i],
                "walls": walls,
                "dim": int(embs.shape[1]),
                "threads_in_process": threads_seen,
                "onnxruntime": ort.__version__,
                "kaldi_native_fbank": getattr(knf, "__version__", "?"),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
