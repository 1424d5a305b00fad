//! The decode loop (packets → downmix → resample, one packet at a time) and the probe's
//! packet-counting fallback, both run under a panic guard.

use std::panic::{AssertUnwindSafe, catch_unwind};

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::errors::Error as SymphoniaError;

use crate::resample::ToTarget;
use crate::source::{Input, Opened, PLAUSIBLE_RATES, make_decoder, open};
use crate::{Audio, AudioError, DecodeOptions, Probe, TARGET_RATE};

/// Once this many packets failed and more failed than decoded, the rest is not worth reading.
const GIVE_UP_AFTER_BAD: u64 = 256;
/// How many bad packets are logged one by one before the rest are only counted.
const LOG_BAD_PACKETS: u64 = 3;

/// Runs `f`, turning a panic inside it into [`AudioError::Corrupt`].
///
/// Why: symphonia is safe Rust, but its demuxers and decoders have panicked on malformed input
/// in the past (index out of bounds, arithmetic overflow, failed assertions). A worker must
/// report a bad upload as `corrupt_audio`, not lose the process. Unwinding is sound here because
/// the closure owns everything it touches (the input is moved in and dropped on unwind), so no
/// half-updated state is observable afterwards; hence `AssertUnwindSafe`. This needs
/// `panic = "unwind"` (the default) in the profile of the binary.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(panic = %message, "audio decoder panicked on malformed input");
            Err(AudioError::corrupt(format!("decoder panicked: {message}")))
        }
    }
}

/// Header facts, with the duration (and, if the header lacks them, rate and channels) taken
/// from the packets when the container does not state them.
pub(crate) fn probe(input: Input) -> Result<Probe, AudioError> {
    let Opened {
        mut reader,
        track_id,
        params,
        mut probe,
        time_base,
    } = open(input)?;
    if probe.duration_s.is_some() && probe.sample_rate > 0 && probe.channels > 0 {
        return match probe.duration_s {
            Some(d) if d <= 0.0 => Err(AudioError::Empty),
            _ => Ok(probe),
        };
    }
    // Decode only until the first buffer tells us the rate and channel count.
    let mut decoder = if probe.sample_rate == 0 || probe.channels == 0 {
        Some(make_decoder(&params)?)
    } else {
        None
    };
    let (mut ticks, mut packets) = (0u64, 0u64);
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymphoniaError::ResetRequired) => break,
            // A truncated tail: the duration is what could be read.
            Err(_) if packets > 0 => break,
            Err(err) => return Err(AudioError::from_symphonia(err)),
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        ticks = ticks.saturating_add(packet.dur.get());
        if let Some(dec) = decoder.as_mut()
            && let Ok(buf) = dec.decode(&packet)
            && buf.frames() > 0
        {
            probe.sample_rate = buf.spec().rate();
            probe.channels = buf.spec().channels().count() as u16;
            decoder = None;
        }
    }
    if packets == 0 {
        return Err(AudioError::Empty);
    }
    probe.duration_s = match time_base {
        Some(tb) => tb.calc_duration(ticks.into()).map(|t| t.as_secs_f64()),
        None if probe.sample_rate > 0 => Some(ticks as f64 / f64::from(probe.sample_rate)),
        None => None,
    };
    Ok(probe)
}

/// Full decode to 16 kHz mono.
pub(crate) fn decode(input: Input, opts: &DecodeOptions) -> Result<Audio, AudioError> {
    let Opened {
        mut reader,
        track_id,
        params,
        mut probe,
        ..
    } = open(input)?;
    let max_s = opts.max_duration.map(|d| d.as_secs_f64());
    if let (Some(max_s), Some(duration_s)) = (max_s, probe.duration_s)
        && duration_s > max_s
    {
        return Err(AudioError::TooLong { duration_s, max_s });
    }
    let mut decoder = make_decoder(&params)?;
    let mut sink = Sink::new(max_s, probe.duration_s);
    let (mut ok, mut bad) = (0u64, 0u64);
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                tracing::warn!("stream changes mid-file (chained stream); keeping the first part");
                break;
            }
            Err(err) if ok == 0 => return Err(AudioError::from_symphonia(err)),
            Err(err) => {
                tracing::warn!(error = %err, "demuxing stopped early; keeping the audio read so far");
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                ok += 1;
                sink.push(&buf)?;
            }
            Err(
                SymphoniaError::DecodeError(_)
                | SymphoniaError::IoError(_)
                | SymphoniaError::LimitError(_),
            ) if bad < GIVE_UP_AFTER_BAD || bad < ok => {
                bad += 1;
                if bad <= LOG_BAD_PACKETS {
                    tracing::warn!(
                        packet_ts = packet.pts.get(),
                        "skipping an undecodable packet"
                    );
                }
            }
            Err(SymphoniaError::ResetRequired) => {
                bad += 1;
                decoder = make_decoder(&params)?;
            }
            Err(SymphoniaError::Unsupported(what)) if ok == 0 => {
                return Err(AudioError::unsupported(format!("{}: {what}", probe.codec)));
            }
            Err(err) => {
                bad += 1;
                tracing::warn!(error = %err, "decoding stopped early");
                break;
            }
        }
    }
    if bad > 0 {
        tracing::warn!(bad, ok, "undecodable packets were skipped");
    }
    if bad > 0 && bad >= ok {
        return Err(AudioError::corrupt(format!(
            "{bad} of {} packets failed to decode",
            ok + bad
        )));
    }
    let Decoded {
        samples,
        source_frames,
        spec,
    } = sink.finish()?;
    let Some((rate, channels)) = spec else {
        // No frames at all: fine for a container that says it is empty, corrupt for one that
        // promised audio (e.g. an MP3 header followed by junk the demuxer skipped).
        return Err(match probe.duration_s {
            Some(stated) if stated > 0.0 => AudioError::corrupt(format!(
                "the header states {stated:.2} s but no audio could be decoded"
            )),
            _ => AudioError::Empty,
        });
    };
    if probe.sample_rate == 0 {
        probe.sample_rate = rate;
    }
    if probe.channels == 0 {
        probe.channels = channels;
    }
    if probe.duration_s.is_none() {
        probe.duration_s = Some(source_frames as f64 / f64::from(rate));
    }
    let duration_s = samples.len() as f64 / f64::from(TARGET_RATE);
    Ok(Audio {
        samples,
        duration_s,
        source: probe,
    })
}

/// Receives decoded buffers: downmixes, checks the duration limit, resamples.
struct Sink {
    max_s: Option<f64>,
    out: Vec<f32>,
    resampler: Option<ToTarget>,
    planes: Vec<Vec<f32>>,
    mono: Vec<f32>,
    /// Seconds decoded so far (summed per buffer, so rate changes are handled).
    decoded_s: f64,
    source_frames: u64,
    /// Rate and channel count of the first non-empty buffer.
    spec: Option<(u32, u16)>,
}

impl Sink {
    fn new(max_s: Option<f64>, stated_s: Option<f64>) -> Self {
        // Reserve for the stated duration, bounded so a lying header cannot make us allocate.
        let reserve_s = stated_s
            .unwrap_or(0.0)
            .min(max_s.unwrap_or(f64::MAX))
            .clamp(0.0, 3600.0);
        let out = Vec::with_capacity((reserve_s * f64::from(TARGET_RATE)) as usize + 1024);
        Sink {
            max_s,
            out,
            resampler: None,
            planes: Vec::new(),
            mono: Vec::new(),
            decoded_s: 0.0,
            source_frames: 0,
            spec: None,
        }
    }

    fn push(&mut self, buf: &GenericAudioBufferRef<'_>) -> Result<(), AudioError> {
        let frames = buf.frames();
        if frames == 0 {
            return Ok(());
        }
        let rate = buf.spec().rate();
        if !PLAUSIBLE_RATES.contains(&rate) {
            return Err(AudioError::corrupt(format!(
                "implausible sample rate {rate} Hz"
            )));
        }
        let channels = buf.spec().channels().count();
        self.spec.get_or_insert((rate, channels as u16));
        self.decoded_s += frames as f64 / f64::from(rate);
        self.source_frames += frames as u64;
        // The margin absorbs rounding in the running sum (a file of exactly the limit passes).
        if let Some(max_s) = self.max_s
            && self.decoded_s > max_s + 1e-6
        {
            return Err(AudioError::TooLong {
                duration_s: self.decoded_s,
                max_s,
            });
        }

        buf.copy_to_vecs_planar::<f32>(&mut self.planes);
        downmix(&self.planes, frames, &mut self.mono);

        if self.resampler.as_ref().is_some_and(|r| r.rate_in() != rate) {
            self.flush()?;
        }
        let resampler = match &mut self.resampler {
            Some(r) => r,
            empty => empty.insert(ToTarget::new(rate).map_err(AudioError::corrupt)?),
        };
        resampler
            .push(&self.mono, &mut self.out)
            .map_err(AudioError::corrupt)
    }

    fn flush(&mut self) -> Result<(), AudioError> {
        if let Some(r) = self.resampler.take() {
            r.finish(&mut self.out).map_err(AudioError::corrupt)?;
        }
        Ok(())
    }

    /// The 16 kHz samples (clamped to [-1, 1]), the source frame count, and the source spec.
    fn finish(mut self) -> Result<Decoded, AudioError> {
        self.flush()?;
        // The resampler's filter can overshoot full-scale input slightly.
        for s in &mut self.out {
            *s = s.clamp(-1.0, 1.0);
        }
        self.out.shrink_to_fit();
        Ok(Decoded {
            samples: self.out,
            source_frames: self.source_frames,
            spec: self.spec,
        })
    }
}

/// What [`Sink::finish`] hands back.
struct Decoded {
    samples: Vec<f32>,
    source_frames: u64,
    /// Rate and channel count of the first non-empty buffer; `None` if nothing decoded.
    spec: Option<(u32, u16)>,
}

/// Mean of the channels; non-finite samples (possible in float WAVs) become silence.
fn downmix(planes: &[Vec<f32>], frames: usize, mono: &mut Vec<f32>) {
    mono.clear();
    mono.resize(frames, 0.0);
    let Some((first, rest)) = planes.split_first() else {
        return;
    };
    mono.copy_from_slice(&first[..frames]);
    for plane in rest {
        for (m, s) in mono.iter_mut().zip(plane) {
            *m += *s;
        }
    }
    let scale = 1.0 / planes.len() as f32;
    for m in mono.iter_mut() {
        *m = if m.is_finite() {
            (*m * scale).clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::Classified;

    #[test]
    fn downmix_is_the_mean_and_drops_non_finite() {
        let planes = vec![vec![0.5, 1.0, f32::NAN], vec![-0.5, 0.0, 0.0]];
        let mut mono = Vec::new();
        downmix(&planes, 3, &mut mono);
        assert_eq!(mono, vec![0.0, 0.5, 0.0]);
    }

    #[test]
    fn a_panic_becomes_corrupt() {
        let err = guarded::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(err.code(), "corrupt_audio");
        assert!(err.to_string().contains("boom"));
    }
}
