//! [`Embedder`]: speaker embeddings from clips, through one of the front ends of [`FrontEnd`],
//! on one single-threaded session per core.
use super::*;

/// Computes what each front end feeds the model.
enum Features {
    Fbank(Fbank),
    Ge2e(Ge2eMel),
    Waveform { rank: usize },
}

/// A speaker-embedding model: 16 kHz PCM clips → L2-normalised embeddings of dimension
/// [`Embedder::dim`].
pub struct Embedder {
    /// One single-threaded session per worker (at least one).
    sessions: Vec<Mutex<Session>>,
    input: String,
    output: String,
    front_end: FrontEnd,
    features: Features,
    dim: usize,
    bytes: u64,
}

impl Embedder {
    /// Loads the ONNX model and picks its [`FrontEnd`]: input `feats` (or any [B, T, 80]) →
    /// [`FrontEnd::Fbank80`] with `fbank_window`; `mels` (or [B, T, 40]) →
    /// [`FrontEnd::Ge2eMel40`]; `waveform` (or [B, 1, N], [B, N]) → [`FrontEnd::Waveform`].
    /// The dimension comes from the output shape, or from one probe run when it is dynamic.
    /// Loads one single-threaded session per core, at most [`MAX_EMBED_SESSIONS`].
    pub fn load(path: &Path, fbank_window: WindowType) -> Result<Self, SpeakersError> {
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_EMBED_SESSIONS);
        const WHAT: &str = "speaker embedding model";
        let (session, bytes) = load_session(path, WHAT, Some(1))?;
        let bad = load_error(WHAT, path);
        let Interface {
            input,
            in_shape,
            output,
            out_shape,
        } = Interface::of(&session, WHAT, path)?;
        let name = input.to_ascii_lowercase();
        let last = in_shape.last().copied();
        let (front_end, features) = if name == "feats" || (in_shape.len() == 3 && last == Some(80))
        {
            let opts = FbankOptions {
                window_type: fbank_window,
                ..FbankOptions::campplus()
            };
            (
                FrontEnd::Fbank80 {
                    window: fbank_window,
                },
                Features::Fbank(Fbank::new(opts)),
            )
        } else if name == "mels" || (in_shape.len() == 3 && last == Some(40)) {
            (FrontEnd::Ge2eMel40, Features::Ge2e(Ge2eMel::new()))
        } else if name == "waveform"
            || (in_shape.len() == 3 && in_shape[1] == 1)
            || in_shape.len() == 2
        {
            let rank = if in_shape.len() == 2 { 2 } else { 3 };
            (FrontEnd::Waveform, Features::Waveform { rank })
        } else {
            return Err(bad(format!(
                "unknown embedding interface: input {input} {in_shape:?} (expected feats [B,T,80], \
                 mels [B,T,40] or waveform [B,1,N])"
            )));
        };
        if !(2..=3).contains(&out_shape.len()) {
            return Err(bad(format!(
                "expected an embedding output [B,D], found {output} {out_shape:?}"
            )));
        }
        let mut sessions = vec![Mutex::new(session)];
        for _ in 1..count {
            let (session, _) = load_session(path, WHAT, Some(1))?;
            sessions.push(Mutex::new(session));
        }
        let mut embedder = Self {
            input,
            output,
            sessions,
            front_end,
            features,
            dim: out_shape.last().copied().filter(|&d| d > 0).unwrap_or(0) as usize,
            bytes: bytes * count as u64,
        };
        if embedder.dim == 0 {
            // Dynamic dimension: one run on 1 s of low noise tells it.
            let probe: Vec<f32> = (0..SAMPLE_RATE)
                .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.01)
                .collect();
            let x = embedder.model_input(&[probe.as_slice()])?;
            let raw = embedder.run_batch(&mut lock(&embedder.sessions[0]), x, 1)?;
            embedder.dim = raw.first().map_or(0, Vec::len);
            if embedder.dim == 0 {
                return Err(bad("the probe run gave an empty embedding".into()));
            }
        }
        tracing::debug!(
            path = %path.display(),
            front_end = ?embedder.front_end,
            dim = embedder.dim,
            "speaker embedding model loaded"
        );
        Ok(embedder)
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn front_end(&self) -> FrontEnd {
        self.front_end
    }

    /// Size of the model file times the number of sessions loaded from it.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Sessions (parallel workers) this embedder runs.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Runs `job(session, j)` for `j in 0..jobs` spread over the sessions (one scoped thread per
    /// session, each taking the next job and locking its own session for it); results in job
    /// order. The first error stops the remaining jobs and is returned.
    fn run_jobs<T: Send>(
        &self,
        jobs: usize,
        job: impl Fn(&mut Session, usize) -> Result<T, SpeakersError> + Sync,
    ) -> Result<Vec<T>, SpeakersError> {
        let workers = self.sessions.len().min(jobs);
        if workers <= 1 {
            let mut session = lock(&self.sessions[0]);
            return (0..jobs).map(|j| job(&mut session, j)).collect();
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let per_worker = std::thread::scope(|scope| {
            let handles: Vec<_> = self.sessions[..workers]
                .iter()
                .map(|session| {
                    let (next, failed, job) = (&next, &failed, &job);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            if j >= jobs {
                                break;
                            }
                            let r = job(&mut lock(session), j);
                            if r.is_err() {
                                failed.store(true, Ordering::Relaxed);
                            }
                            done.push((j, r));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut slots: Vec<Option<T>> = (0..jobs).map(|_| None).collect();
        for (j, r) in per_worker.into_iter().flatten() {
            slots[j] = Some(r?);
        }
        Ok(slots
            .into_iter()
            .map(|t| t.expect("every job ran"))
            .collect())
    }

    /// One L2-normalised embedding per 16 kHz mono clip. Clips of equal length are batched
    /// together (at most [`MAX_EMBED_BATCH`] per run; zero-padding would change the statistics
    /// pooling); clips under [`MIN_CLIP_SAMPLES`] are repeated up to it. An empty clip is
    /// [`SpeakersError::AudioTooShort`].
    pub fn embed_clips(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakersError> {
        if let Some(i) = clips.iter().position(|c| c.is_empty()) {
            return Err(SpeakersError::AudioTooShort(format!(
                "clip {i} has no samples"
            )));
        }
        let tiled: Vec<std::borrow::Cow<'_, [f32]>> = clips
            .iter()
            .map(|c| {
                if c.len() >= MIN_CLIP_SAMPLES {
                    std::borrow::Cow::Borrowed(*c)
                } else {
                    std::borrow::Cow::Owned(
                        c.iter().copied().cycle().take(MIN_CLIP_SAMPLES).collect(),
                    )
                }
            })
            .collect();
        if let Features::Ge2e(mel) = &self.features {
            return self.run_jobs(tiled.len(), |session, i| {
                self.embed_ge2e(session, mel, &tiled[i])
            });
        }
        // Group equal lengths (stable sort), then cut each group into batches small enough that
        // every session gets work, at most MAX_EMBED_BATCH clips each.
        let mut order: Vec<usize> = (0..tiled.len()).collect();
        order.sort_by_key(|&i| tiled[i].len());
        let mut batches: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let len = tiled[order[start]].len();
            let end = start + order[start..].partition_point(|&i| tiled[i].len() == len);
            let group = &order[start..end];
            let size = group
                .len()
                .div_ceil(self.sessions.len())
                .clamp(1, MAX_EMBED_BATCH);
            batches.extend(group.chunks(size));
            start = end;
        }
        let results = self.run_jobs(batches.len(), |session, b| {
            let batch: Vec<&[f32]> = batches[b].iter().map(|&i| &*tiled[i]).collect();
            let x = self.model_input(&batch)?;
            self.run_batch(session, x, batch.len())
        })?;
        let mut out = vec![Vec::new(); tiled.len()];
        for (batch, embeddings) in batches.iter().zip(results) {
            for (&i, e) in batch.iter().zip(embeddings) {
                out[i] = normalized(e);
            }
        }
        Ok(out)
    }

    /// One speaker's embedding from several regions (seconds) of one 16 kHz recording: regions
    /// are clamped to the audio and taken in time order up to 60 s of speech, cut into
    /// equal-length sub-segments of 2 s (spread evenly over each region; a region under 2 s is
    /// one sub-segment), embedded, averaged weighted by duration and L2-normalised. `None` under
    /// 0.5 s of speech in total.
    pub fn voiceprint(
        &self,
        pcm: &[f32],
        regions: &[(f64, f64)],
    ) -> Result<Option<Vec<f32>>, SpeakersError> {
        const PIECE: usize = 2 * SAMPLE_RATE;
        const MAX_SPEECH: usize = 60 * SAMPLE_RATE;
        const MIN_SPEECH: usize = SAMPLE_RATE / 2;
        let to_sample = |t: f64| {
            if t.is_finite() {
                ((t.max(0.0) * SAMPLE_RATE as f64).round() as usize).min(pcm.len())
            } else {
                0
            }
        };
        let mut spans: Vec<(usize, usize)> = regions
            .iter()
            .map(|&(a, b)| (to_sample(a), to_sample(b)))
            .filter(|(a, b)| b > a)
            .collect();
        spans.sort_unstable();
        // Merge overlaps so no sample counts twice.
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut total = 0usize;
        for (a, b) in merged {
            if total >= MAX_SPEECH {
                break;
            }
            let b = b.min(a + (MAX_SPEECH - total));
            let len = b - a;
            total += len;
            if len <= PIECE {
                pieces.push((a, b));
                continue;
            }
            let n = len.div_ceil(PIECE);
            let span = len - PIECE;
            for k in 0..n {
                let s = a + span * k / (n - 1);
                pieces.push((s, s + PIECE));
            }
        }
        if total < MIN_SPEECH {
            return Ok(None);
        }
        let clips: Vec<&[f32]> = pieces.iter().map(|&(a, b)| &pcm[a..b]).collect();
        let embeddings = self.embed_clips(&clips)?;
        let mut sum = vec![0f32; self.dim];
        for (e, clip) in embeddings.iter().zip(&clips) {
            let w = clip.len() as f32 / SAMPLE_RATE as f32;
            for (s, x) in sum.iter_mut().zip(e) {
                *s += w * x;
            }
        }
        Ok(Some(normalized(sum)))
    }

    /// Resemblyzer's `embed_utterance`: zero-pad to the last partial, mel, embed the 1.6 s
    /// partials (equal length, batched), average, renormalise.
    fn embed_ge2e(
        &self,
        session: &mut Session,
        mel: &Ge2eMel,
        clip: &[f32],
    ) -> Result<Vec<f32>, SpeakersError> {
        let (slices, padded_len) = ge2e::partial_slices(clip.len());
        let mut padded = clip.to_vec();
        padded.resize(padded_len, 0.0);
        let mels = mel.compute(&padded);
        let mut sum = vec![0f32; self.dim];
        for batch in slices.chunks(MAX_EMBED_BATCH) {
            let mut data = Vec::with_capacity(batch.len() * ge2e::PARTIAL_FRAMES * ge2e::N_MELS);
            for s in batch {
                data.extend_from_slice(&mels[s.start * ge2e::N_MELS..s.end * ge2e::N_MELS]);
            }
            let x = Tensor::from_array(([batch.len(), ge2e::PARTIAL_FRAMES, ge2e::N_MELS], data))
                .map_err(|e| SpeakersError::run("embedding input", e))?;
            for e in self.run_batch(session, x, batch.len())? {
                for (s, v) in sum.iter_mut().zip(&e) {
                    *s += v;
                }
            }
        }
        Ok(normalized(sum))
    }

    /// The model input for equal-length clips (fbank or waveform front ends).
    fn model_input(&self, clips: &[&[f32]]) -> Result<Tensor<f32>, SpeakersError> {
        let len = clips.first().map_or(0, |c| c.len());
        let tensor = match &self.features {
            Features::Fbank(fbank) => {
                let frames = fbank.num_frames(len);
                let mut data = Vec::with_capacity(clips.len() * frames * 80);
                for clip in clips {
                    let mut f = fbank.compute(clip);
                    f.mean_normalize();
                    data.extend_from_slice(f.as_slice());
                }
                Tensor::from_array(([clips.len(), frames, fbank.num_bins()], data))
            }
            Features::Ge2e(mel) => {
                let frames = Ge2eMel::num_frames(len);
                let mut data = Vec::with_capacity(clips.len() * frames * ge2e::N_MELS);
                for clip in clips {
                    data.extend(mel.compute(clip));
                }
                Tensor::from_array(([clips.len(), frames, ge2e::N_MELS], data))
            }
            Features::Waveform { rank } => {
                let data: Vec<f32> = clips.iter().flat_map(|c| c.iter().copied()).collect();
                if *rank == 2 {
                    Tensor::from_array(([clips.len(), len], data))
                } else {
                    Tensor::from_array(([clips.len(), 1, len], data))
                }
            }
        };
        tensor.map_err(|e| SpeakersError::run("embedding input", e))
    }

    /// Runs one batch; raw (not normalised) embeddings, one per item.
    fn run_batch(
        &self,
        session: &mut Session,
        x: Tensor<f32>,
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, SpeakersError> {
        let out = session
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| SpeakersError::run("running the speaker embedding model", e))?;
        let (shape, data) = out[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| SpeakersError::run("embedding output", e))?;
        if shape.first().copied() != Some(batch as i64)
            || data.is_empty()
            || data.len() % batch != 0
        {
            return Err(SpeakersError::run(
                "embedding output",
                format!("unexpected shape {shape:?} for a batch of {batch}"),
            ));
        }
        let dim = data.len() / batch;
        if self.dim != 0 && dim != self.dim {
            return Err(SpeakersError::run(
                "embedding output",
                format!("dimension {dim}, expected {}", self.dim),
            ));
        }
        Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }
}

/// `v / |v|`; a zero or non-finite vector is returned as it is (all zeros stay zeros).
pub(crate) fn normalized(v: Vec<f32>) -> Vec<f32> {
    crate::cluster::normalized(&v).unwrap_or(v)
}
