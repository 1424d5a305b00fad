//! Compares the fbank with reference implementations on a deterministic synthetic signal.
//!
//! Signal (1.0 s at 16 kHz, `t = n / 16000`, computed in f64 and cast to f32, peak ≤ 0.3):
//! `0.1·sin(2π·300t) + 0.1·sin(2π·1234t) + 0.1·sin(2π(100t + 1900t²))` (chirp 100 → 3900 Hz).
//!
//! References were computed once (2026-11-21) in a venv with onnx-asr==0.12.0 (`--no-deps`),
//! onnxruntime==1.23.2, numpy==2.4.6, kaldi-native-fbank==1.22.5:
//!
//! ```python
//! import os, numpy as np, onnxruntime as ort, onnx_asr, kaldi_native_fbank as knf
//! n = np.arange(16000, dtype=np.float64); t = n / 16000.0
//! x = (0.1*np.sin(2*np.pi*300*t) + 0.1*np.sin(2*np.pi*1234*t)
//!      + 0.1*np.sin(2*np.pi*(100*t + 1900*t*t))).astype(np.float32)
//! # 1) WeSpeaker (Hamming window): onnx-asr's preprocessors/data/wespeaker.onnx.
//! #    Inputs: waveforms f32 [B,N], waveforms_lens i64 [B]; outputs: features [B,T,80], features_lens.
//! #    The graph does NOT scale by 32768 (feeding x and x*32768 differs by ln(32768²) = 20.79 in
//! #    every bin), so it is fed x*32768, which is what Fbank::compute does internally.
//! #    It does NOT mean-normalise either: onnx-asr's WespeakerEmbeddings subtracts the per-bin
//! #    mean over frames itself, after the preprocessor (`features -= features.mean(axis=1)`).
//! p = os.path.join(os.path.dirname(onnx_asr.__file__), "preprocessors/data/wespeaker.onnx")
//! f, _ = ort.InferenceSession(p).run(None, {"waveforms": (x*32768)[None],
//!                                           "waveforms_lens": np.array([16000])})
//! f = f[0]                                   # [98, 80]; pinned: f[fr, b] and f.mean(0)
//! # 2) CAM++ (Povey window): kaldi_native_fbank, dither 0, snip_edges, 80 bins, 20 Hz..Nyquist.
//! o = knf.FbankOptions(); o.frame_opts.dither = 0; o.frame_opts.snip_edges = True
//! o.mel_opts.num_bins = 80; o.mel_opts.low_freq = 20; o.mel_opts.high_freq = 0
//! fb = knf.OnlineFbank(o); fb.accept_waveform(16000, (x*32768).tolist()); fb.input_finished()
//! k = np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)])   # pinned: k[fr, b]
//! # 3) The same Povey pipeline in float64 NumPy (mel banks from onnx-asr's fbanks.npz
//! #    "wespeaker", [257, 80], Nyquist row zero), for the per-bin means:
//! fr = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64)*32768, 400)[::160]
//! fr = fr - fr.mean(-1, keepdims=True)
//! fr = fr - 0.97*np.pad(fr, ((0,0),(1,0)), mode="edge")[:, :-1]
//! w = (0.5 - 0.5*np.cos(2*np.pi*np.arange(400)/399))**0.85
//! banks = np.load(os.path.join(os.path.dirname(p), "fbanks.npz"))["wespeaker"].astype(np.float64)
//! g = np.log(np.maximum((np.abs(np.fft.rfft(fr*w, 512))**2) @ banks, np.finfo(np.float32).eps))
//! ```
//!
//! Reached (all 98 × 80 values): Hamming vs wespeaker.onnx max |Δ| = 4.0e-4; Povey vs the f64
//! NumPy pipeline 2.7e-6. kaldi_native_fbank works in f32 and differs by up to 0.09 in bins whose
//! energy is ~12 orders of magnitude below the frame's peak (log values < 0 here; 8.3e-4 where its
//! value is > 5), so only its values above 5 are pinned.

#![allow(
    clippy::excessive_precision,
    reason = "reference values are pasted as Python printed them"
)]

use voxfleet_speakers::{Fbank, FbankOptions, Features};

const TOL: f32 = 1e-3;

fn signal() -> Vec<f32> {
    let tau = 2.0 * std::f64::consts::PI;
    (0..16000)
        .map(|n| {
            let t = f64::from(n) / 16000.0;
            (0.1 * (tau * 300.0 * t).sin()
                + 0.1 * (tau * 1234.0 * t).sin()
                + 0.1 * (tau * (100.0 * t + 1900.0 * t * t)).sin()) as f32
        })
        .collect()
}

fn bin_means(feats: &Features) -> Vec<f32> {
    let n = feats.num_frames() as f64;
    (0..feats.num_bins())
        .map(|b| (feats.frames().map(|f| f64::from(f[b])).sum::<f64>() / n) as f32)
        .collect()
}

fn check_points(feats: &Features, points: &[(usize, usize, f32)], tol: f32) {
    for &(frame, bin, want) in points {
        let got = feats.frame(frame)[bin];
        assert!(
            (got - want).abs() <= tol,
            "frame {frame} bin {bin}: got {got}, reference {want}"
        );
    }
}

fn check_means(feats: &Features, want: &[f32; 80], tol: f32) {
    let got = bin_means(feats);
    let max = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(max <= tol, "per-bin means differ by {max}: {got:?}");
}

/// `f[fr, b]` from wespeaker.onnx.
const HAMMING_POINTS: [(usize, usize, f32); 20] = [
    (0, 0, 13.627131),
    (0, 17, 12.315283),
    (0, 39, 12.971384),
    (0, 58, 11.349108),
    (0, 79, 11.036496),
    (31, 0, 12.553026),
    (31, 17, 12.613923),
    (31, 39, 14.508798),
    (31, 58, 12.239844),
    (31, 79, 11.854547),
    (64, 0, 12.231969),
    (64, 17, 10.107226),
    (64, 39, 13.853986),
    (64, 58, 13.933404),
    (64, 79, 12.873781),
    (97, 0, 12.994353),
    (97, 17, 10.726947),
    (97, 39, 13.687955),
    (97, 58, 25.126408),
    (97, 79, 11.359448),
];

/// `f.mean(0)` from wespeaker.onnx.
#[rustfmt::skip]
const HAMMING_MEANS: [f32; 80] = [
    12.415049, 10.834728, 11.308517, 11.442818, 11.510120, 11.591595, 11.484469, 11.513766,
    18.551861, 20.904989, 21.145378, 19.666286, 16.770391, 12.532994, 12.727127, 12.508837,
    12.823991, 12.967668, 12.937800, 12.923278, 13.261147, 13.226899, 13.137464, 13.942392,
    13.517811, 13.896183, 14.590210, 14.070504, 14.666619, 14.629225, 22.366579, 24.265537,
    23.135578, 14.715180, 15.019364, 14.774459, 14.857336, 14.498715, 14.583064, 14.319507,
    14.365350, 14.334824, 14.224206, 14.353773, 14.236897, 14.298150, 14.329597, 14.261450,
    14.274002, 14.339375, 14.268825, 14.250272, 14.238300, 14.227910, 14.162582, 14.105834,
    14.026392, 13.924904, 13.686649, 13.190662, 12.738837, 12.485701, 12.340105, 12.214444,
    12.106823, 12.015751, 11.916438, 11.836905, 11.773683, 11.718517, 11.648736, 11.610079,
    11.566405, 11.534281, 11.507238, 11.487257, 11.472466, 11.471668, 11.477010, 11.488383,
];

/// `k[fr, b]` from kaldi_native_fbank (Povey window), values above 5 only.
const POVEY_POINTS: [(usize, usize, f32); 14] = [
    (0, 0, 14.131543),
    (0, 17, 8.404662),
    (0, 39, 7.314020),
    (31, 0, 11.635284),
    (31, 17, 8.476395),
    (31, 39, 9.375400),
    (64, 0, 12.195446),
    (64, 17, 7.821739),
    (64, 39, 7.588151),
    (64, 58, 5.734714),
    (97, 0, 12.060619),
    (97, 17, 7.911975),
    (97, 39, 7.436492),
    (97, 58, 25.143019),
];

/// `g.mean(0)` from the float64 NumPy Povey pipeline.
#[rustfmt::skip]
const POVEY_MEANS: [f32; 80] = [
    11.923365, 9.005555, 9.384448, 10.511246, 11.082329, 11.218767, 11.912013, 14.215889,
    18.711225, 20.915441, 21.128418, 19.752468, 16.892961, 13.132037, 12.638565, 11.405686,
    9.332654, 9.280551, 9.605472, 8.879060, 8.637965, 8.684405, 9.486723, 10.095896,
    9.406855, 11.385277, 11.938641, 12.209824, 14.858175, 15.839072, 22.424569, 24.264409,
    23.167923, 16.229611, 15.049161, 12.528623, 12.233807, 10.795051, 10.746141, 9.597506,
    9.771316, 9.113136, 9.106435, 8.903171, 8.673489, 8.712305, 8.551514, 8.454547,
    8.418524, 8.329780, 8.165472, 8.063353, 7.919406, 7.734594, 7.481830, 7.220499,
    6.878200, 6.442852, 5.763175, 4.808866, 3.876771, 3.119940, 2.578973, 2.109786,
    1.688886, 1.306103, 0.927751, 0.577335, 0.252119, -0.043216, -0.370107, -0.649017,
    -0.927313, -1.204162, -1.462231, -1.714164, -1.962028, -2.172432, -2.364175, -2.508712,
];

#[test]
fn wespeaker_hamming_matches_onnx_asr_preprocessor() {
    let feats = Fbank::new(FbankOptions::wespeaker()).compute(&signal());
    assert_eq!((feats.num_frames(), feats.num_bins()), (98, 80));
    check_points(&feats, &HAMMING_POINTS, TOL);
    check_means(&feats, &HAMMING_MEANS, TOL);
}

#[test]
fn campplus_povey_matches_kaldi_native_fbank_and_f64_reference() {
    let feats = Fbank::new(FbankOptions::campplus()).compute(&signal());
    assert_eq!((feats.num_frames(), feats.num_bins()), (98, 80));
    check_points(&feats, &POVEY_POINTS, TOL);
    check_means(&feats, &POVEY_MEANS, 1e-4);
}

#[test]
fn mean_normalised_features_are_the_reference_minus_its_means() {
    let mut feats = Fbank::new(FbankOptions::wespeaker()).compute(&signal());
    feats.mean_normalize();
    let cmn: Vec<(usize, usize, f32)> = HAMMING_POINTS
        .iter()
        .map(|&(f, b, v)| (f, b, v - HAMMING_MEANS[b]))
        .collect();
    check_points(&feats, &cmn, TOL);
}
