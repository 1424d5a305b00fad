//! End to end for the converter and the mel filterbank: fetch tiny.en, synthesise a sentence
//! with espeak-ng, and greedy-decode it with candle. Fails without espeak-ng
//! (`scripts/tools.sh` installs it).

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self, audio, model::Whisper};
use voxfleet_models::{FetchOptions, ModelsDir, fetch};

/// 16-bit mono WAV → f32 samples at 16 kHz (linear interpolation; fine for a smoke test).
fn read_wav_16k(bytes: &[u8]) -> Vec<f32> {
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as f64;
    let data_at = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    let pcm: Vec<f32> = bytes[data_at..]
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect();
    let n = (pcm.len() as f64 * 16000.0 / rate) as usize;
    (0..n)
        .map(|i| {
            let x = i as f64 * rate / 16000.0;
            let (j, f) = (x as usize, (x - x.floor()) as f32);
            let a = pcm[j.min(pcm.len() - 1)];
            let b = pcm[(j + 1).min(pcm.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

#[test]
fn tiny_en_transcribes_espeak() {
    let tmp = tempfile::tempdir().unwrap();
    let sentence = "the quick brown fox jumps over the lazy dog";
    let wav = voxfleet_testkit::espeak::say(tmp.path(), Default::default(), sentence);
    let opts = FetchOptions {
        progress: false,
        ..Default::default()
    };
    fetch(tmp.path(), &["tiny.en"], &opts).unwrap();
    let w = ModelsDir::new(tmp.path()).whisper("tiny.en").unwrap();
    let cfg: whisper::Config = serde_json::from_slice(&std::fs::read(&w.config).unwrap()).unwrap();
    let dev = Device::Cpu;
    let vb =
        VarBuilder::from_buffered_safetensors(std::fs::read(&w.weights).unwrap(), DType::F32, &dev)
            .unwrap();
    let mut model = Whisper::load(&vb, cfg.clone()).unwrap();

    let pcm = read_wav_16k(&std::fs::read(&wav).unwrap());
    let mel = audio::pcm_to_mel(&cfg, &pcm, &w.mel_filters);
    let frames = mel.len() / cfg.num_mel_bins;
    let mel = Tensor::from_vec(mel, (1, cfg.num_mel_bins, frames), &dev).unwrap();
    let mel = mel.narrow(2, 0, whisper::N_FRAMES.min(frames)).unwrap();
    let enc = model.encoder.forward(&mel, true).unwrap();

    // Token ids and the byte-level BPE vocabulary straight from tokenizer.json.
    let tok: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&w.tokenizer).unwrap()).unwrap();
    let mut id_of: HashMap<String, u32> = HashMap::new();
    for t in tok["added_tokens"].as_array().unwrap() {
        id_of.insert(
            t["content"].as_str().unwrap().into(),
            t["id"].as_u64().unwrap() as u32,
        );
    }
    let vocab: HashMap<u32, String> = tok["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (v.as_u64().unwrap() as u32, k.clone()))
        .collect();
    let eot = id_of[whisper::EOT_TOKEN];
    let mut tokens = vec![
        id_of[whisper::SOT_TOKEN],
        id_of[whisper::NO_TIMESTAMPS_TOKEN],
    ];
    let prompt = tokens.len();
    for i in 0..40 {
        let t = Tensor::new(tokens.as_slice(), &dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let out = model.decoder.forward(&t, &enc, i == 0).unwrap();
        let last = out.i((.., out.dim(1).unwrap() - 1..)).unwrap();
        let logits = model
            .decoder
            .final_linear(&last)
            .unwrap()
            .flatten_all()
            .unwrap();
        let mut l: Vec<f32> = logits.to_vec1().unwrap();
        for &s in &w.suppress_ids {
            l[s as usize] = f32::NEG_INFINITY;
        }
        let next = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
        if next == eot {
            break;
        }
        tokens.push(next);
    }
    let text: String = tokens[prompt..]
        .iter()
        .filter_map(|t| vocab.get(t))
        .map(|s| s.replace('Ġ', " "))
        .collect();
    let norm: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    eprintln!("transcript: {text:?}");
    // tiny.en on espeak is not perfect (it heard "dump" for "jumps" here); a broken conversion
    // or filterbank gives garbage, so most words matching is the signal.
    let heard: Vec<&str> = norm.split_whitespace().collect();
    let hits = sentence.split(' ').filter(|w| heard.contains(w)).count();
    assert!(hits >= 7, "{hits}/9 words recognised in {text:?}");
}
