#!/usr/bin/env python3
"""Builds the diarization development set of voxfleet-bench-diarize (standard library only;
espeak-ng, sox, pip and apt-get download do the rest). sox runs with -R, its repeatable mode,
so its dither and noise are the same on every build. Nothing here is committed: the audio is
made or fetched into OUT (default ~/.cache/voxfleet/diarize-devset) and reused.

Every recording gets a WAV, an RTTM reference and an entry in OUT/manifest.json with its
`part` (what kind of audio) and `split`: `tune` (parameters may be chosen on it) or `test`
(reported, never tuned on). Voices never cross splits.

Parts:
- synthetic: espeak-ng conversations of 2-6 speakers. A speaker is an English espeak-ng voice
  (accent) with a voice variant, speed 130-175 words a minute and pitch 30-70. The variants
  are split three ways: `tune` conversations use the first third, `test` conversations the
  second, and the last third is left for the end-to-end tests (`held_out_variants` in the
  manifest). Turns of 1-3 sentences, back-channels by other speakers, and in a third of the
  conversations overlapping turn starts. Exact references: each utterance's speech regions
  (20 ms frames above -40 dBFS and 15 dB above the noise floor, gaps under 0.3 s bridged) at the place it was mixed in.
- synthetic-phone: some of those conversations through a telephone channel (300-3400 Hz,
  8 kHz, mu-law), written at 8 kHz.
- synthetic-noisy: some with pink noise (sox) at 10-20 dB SNR.
- ami: real meeting audio, the 30 s excerpts of the AMI corpus that pyannote-audio 4.0.7
  ships in its source archive (tests/data, RTTMs by file list). `debug.train` is `tune`,
  `debug.development` and `debug.test` are `test`. `trñ00.wav` is named `trn00` in the RTTM.
- ami-phone: the same AMI excerpts through the telephone channel, in the same splits: real
  conversational speech at 8 kHz with a `tune` part (the real-mix voices are all `test`).
- real-mix: conversations mixed from recordings of single real voices in Debian packages:
  pocketsphinx-testdata (a LibriVox reader, 16 kHz), asterisk-core-sounds-en-wav (one
  female voice, 8 kHz), codec2-examples (ve9qrp, vk5qi: two radio amateurs, 8 kHz; not
  vk2tpm_004, whose hiss leaves 7 dB between speech and pauses, so no reference can be cut
  from it, nor david4, the same voice: CAM++ cosine 0.97). Each recording is cut at its
  pauses into utterances. All `test`. `real-mix-phone` versions are
  written at 8 kHz. Their manifest entries name the person behind each RTTM label
  (`voices`), for the known-speaker check of voxfleet-bench-diarize.

Usage: diarize_devset.py [OUT] [--seed N]
"""

import argparse
import array
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import wave

SR = 16000
# Raised whenever what the set holds changes, so that an older build is made again
# (2: the ami-phone part).
VERSION = 2
SENTENCES = [
    "I think we should start with the budget for next quarter.",
    "The numbers from last month were better than we expected.",
    "Can you send me the report before the meeting on Friday?",
    "We moved the servers to the new building in the spring.",
    "Most of the customers asked for a cheaper plan.",
    "The train was late again this morning, so I missed the call.",
    "Let me check my notes and get back to you this afternoon.",
    "Our team finished the first version two weeks ago.",
    "The weather has been strange all week, warm and then cold.",
    "I would rather wait until we have the final figures.",
    "She said the design was ready, but the tests were failing.",
    "We need three more people to answer the phones in December.",
    "The kitchen on the second floor is closed for repairs.",
    "Did anyone read the contract that arrived yesterday?",
    "My daughter started school in September and loves it.",
    "The price of coffee went up again at the corner shop.",
    "If we ship on Monday, support will need the notes by Sunday.",
    "He has been working from home since the office flooded.",
    "That sounds reasonable, as long as the deadline holds.",
    "The old printer jammed twice during the presentation.",
    "I disagree, the second option is cheaper in the long run.",
    "We could ask the bank for a longer loan instead.",
    "The garden needs water every day when it is this hot.",
    "Please remember to lock the door when you leave tonight.",
    "Nobody told me the meeting had moved to Thursday.",
    "The new hire from Boston starts on the first of the month.",
    "Our flight leaves at six, so we should be there by four.",
    "The library keeps the old maps in the basement.",
    "I tried the new restaurant, and the soup was excellent.",
    "We should write this down before everyone forgets it.",
    "The river rose three feet after the storm last night.",
    "Can we talk about the hiring plan for a minute?",
    "The software update broke the login page for an hour.",
    "My brother fixes bicycles on the weekends for fun.",
    "The board wants a clear answer by the end of the week.",
    "It took us four hours to drive through the mountains.",
    "I am not sure the customers will notice the difference.",
    "The museum opens late on Wednesdays during the summer.",
    "Let us split the work so that nobody is stuck alone.",
    "The children painted the fence bright green last year.",
]
BACKCHANNELS = ["Yeah.", "Right.", "Okay.", "I see.", "Sure.", "Mm hmm.", "Exactly.", "Really?"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# Variants that are not a plain human voice (whisper, robots, test voices) are left out.
SKIP_VARIANTS = {"whisper", "female_whisper", "Demonic", "fast_test", "UniversalRobot",
                 "anikaRobot", "Half-LifeAnnouncementSystem", "Robosoft", "Robosoft2",
                 "Robosoft3", "Robosoft4", "Robosoft5", "Robosoft6", "Robosoft7", "Robosoft8",
                 "Kaukovalta", "Storm", "Tweaky", "croak"}


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_wav(path):
    """Mono 16-bit WAV at SR (sox converts anything else first) -> list of floats."""
    try:
        with wave.open(path) as w:
            ok = w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SR
    except wave.Error:  # float or other encodings
        ok = False
    if not ok:
        tmp = os.path.join(tempfile.gettempdir(), f"devset-{os.getpid()}.wav")
        run(["sox", "-R", path, "-r", str(SR), "-c", "1", "-b", "16", tmp])
        path = tmp
    with wave.open(path) as w:
        a = array.array("h", w.readframes(w.getnframes()))
    if not ok:
        os.remove(tmp)
    if sys.byteorder != "little":
        a.byteswap()
    return [x / 32768.0 for x in a]


def write_wav(path, pcm, rate=SR):
    a = array.array("h", (max(-32768, min(32767, int(round(x * 32767)))) for x in pcm))
    if sys.byteorder != "little":
        a.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(a.tobytes())


def speech_regions(pcm, bridge=0.3, floor_db=-40.0, above_noise_db=15.0):
    """(start, end) seconds of 20 ms frames louder than `floor_db` dBFS and than the noise
    floor (the 10th percentile of the frame levels, e.g. a radio's hiss) plus `above_noise_db`;
    gaps under `bridge` joined."""
    hop = SR // 50
    levels = []
    for i in range(0, len(pcm), hop):
        f = pcm[i:i + hop]
        rms = math.sqrt(sum(x * x for x in f) / max(1, len(f)))
        levels.append(20 * math.log10(max(rms, 1e-9)))
    if not levels:
        return []
    noise = sorted(levels)[len(levels) // 10]
    threshold = max(floor_db, noise + above_noise_db)
    on = [lv > threshold for lv in levels]
    regions = []
    for i, v in enumerate(on):
        if not v:
            continue
        s, e = i * hop / SR, min(len(pcm), (i + 1) * hop) / SR
        if regions and s - regions[-1][1] < bridge:
            regions[-1][1] = e
        else:
            regions.append([s, e])
    return [tuple(r) for r in regions]


def trim(pcm):
    r = speech_regions(pcm)
    if not r:
        return []
    return pcm[int(r[0][0] * SR):int(r[-1][1] * SR)]


class Voice:
    def __init__(self, name, accent, variant, speed, pitch):
        self.name, self.accent, self.variant = name, accent, variant
        self.speed, self.pitch = speed, pitch

    def say(self, text, cache):
        key = f"{self.accent}+{self.variant}-s{self.speed}-p{self.pitch}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        path = os.path.join(cache, key + ".wav")
        if not os.path.exists(path):
            raw = path + ".raw.wav"
            run(["espeak-ng", "-v", f"{self.accent}+{self.variant}", "-s", str(self.speed),
                 "-p", str(self.pitch), "-w", raw, text])
            run(["sox", "-R", raw, "-r", str(SR), "-c", "1", "-b", "16", path])
            os.remove(raw)
        return trim(read_wav(path))


def mix(utterances, duration_pad=0.5):
    """utterances: [(start_s, speaker, pcm)] -> (pcm, [(start, end, speaker)])."""
    end = max(s + len(p) / SR for s, _, p in utterances) + duration_pad
    out = [0.0] * int(end * SR)
    ref = []
    for start, spk, pcm in utterances:
        i0 = int(round(start * SR))
        for j, x in enumerate(pcm):
            out[i0 + j] += x
        for a, b in speech_regions(pcm):
            ref.append((i0 / SR + a, i0 / SR + b, spk))
    peak = max(1e-9, max(abs(x) for x in out))
    if peak > 0.95:
        out = [x * 0.95 / peak for x in out]
    return out, sorted(ref)


def conversation(rng, speakers, lines, overlap, min_s):
    """Turn plan: [(start, speaker, pcm)] from `lines(speaker, kind)` (kind "turn"/"back")."""
    utts, t, prev = [], 0.5, None
    n = len(speakers)
    order = list(range(n))
    rng.shuffle(order)
    k = 0
    while t < min_s or k < 2 * n:
        # Everyone speaks early on, then speakers follow at random.
        spk = order[k] if k < n else rng.choice([s for s in range(n) if s != prev])
        pcm = lines(spk, "turn")
        start = t
        if overlap and prev is not None and rng.random() < 0.4:
            start = max(0.5, t - rng.uniform(0.3, 1.0))
        utts.append((start, spk, pcm))
        end = start + len(pcm) / SR
        # A back-channel by someone else in the middle of a long turn.
        if n > 1 and len(pcm) > 3 * SR and rng.random() < 0.35:
            other = rng.choice([s for s in range(n) if s != spk])
            bc = lines(other, "back")
            at = start + rng.uniform(0.4, 0.7) * len(pcm) / SR
            if not overlap:
                # Without overlap: the back-channel goes into a pause after the turn.
                at = end + 0.25
                end = at + len(bc) / SR
            utts.append((at, other, bc))
        t = end + rng.uniform(0.15, 0.8)
        prev = spk
        k += 1
    return utts


def write_item(out, items, item_id, part, split, pcm, ref, rate=SR, channel=None, rng=None,
               voices=None):
    wav = os.path.join(out, "audio", item_id + ".wav")
    tmp = wav + ".tmp.wav"
    write_wav(tmp, pcm)
    if channel == "phone":
        # Telephone band and mu-law, then back to 16-bit PCM at 8 kHz.
        mu = wav + ".ul.wav"
        run(["sox", "-R", tmp, "-r", "8000", "-e", "u-law", mu, "sinc", "300-3400", "compand",
             "0.02,0.2", "-60,-60,-40,-20,0,-5", "-3"])
        run(["sox", "-R", mu, "-e", "signed-integer", "-b", "16", wav])
        os.remove(mu)
        os.remove(tmp)
        rate = 8000
    elif channel == "noisy":
        snr = rng.uniform(10, 20)
        power = sum(x * x for x in pcm) / max(1, len(pcm))
        level = 10 * math.log10(max(power, 1e-12)) - snr
        noise = wav + ".noise.wav"
        dur = len(pcm) / SR
        # Pink noise has about 11 dB of crest; sox's `gain` sets its RMS level.
        run(["sox", "-R", "-n", "-r", str(SR), "-c", "1", "-b", "16", noise, "synth", f"{dur:.3f}",
             "pinknoise", "gain", "-n", f"{level + 11:.1f}"])
        run(["sox", "-R", "-m", tmp, noise, wav, "gain", "-n", "-1"])
        os.remove(noise)
        os.remove(tmp)
    else:
        os.replace(tmp, wav)
    rttm = os.path.join(out, "rttm", item_id + ".rttm")
    with open(rttm, "w") as f:
        for a, b, s in ref:
            f.write(f"SPEAKER {item_id} 1 {a:.3f} {b - a:.3f} <NA> <NA> spk{s} <NA> <NA>\n")
    item = {
        "id": item_id, "part": part, "split": split, "wav": os.path.relpath(wav, out),
        "rttm": os.path.relpath(rttm, out), "sample_rate": rate,
        "speakers": len({s for _, _, s in ref}),
        "overlap": any(ref[i][1] > ref[j][0] and ref[i][2] != ref[j][2]
                       for i in range(len(ref)) for j in range(i + 1, min(len(ref), i + 6))),
        "duration_s": round(len(pcm) / SR, 3),
    }
    if voices is not None:
        # The person behind each RTTM label: `spk{i}` is voices[i].
        item["voices"] = list(voices)
    items.append(item)


def variants():
    """espeak-ng's voice variants by file name (`+m2`, not `+male2`: an unknown variant name
    silently gives the plain voice), each checked to change the sound of the plain voice."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], check=True, capture_output=True,
                         text=True).stdout.splitlines()[1:]
    names = set()
    for line in out:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/") and cols[3] not in SKIP_VARIANTS:
            names.add(cols[4][3:])
    with tempfile.TemporaryDirectory() as tmp:
        def sound(voice):
            path = os.path.join(tmp, "v.wav")
            run(["espeak-ng", "-v", voice, "-w", path, "The quick brown fox."])
            with open(path, "rb") as f:
                return hashlib.sha1(f.read()).hexdigest()
        plain = sound("en-us")
        return sorted(v for v in names if sound(f"en-us+{v}") != plain)


def synthetic(out, items, rng, tune_n, test_n):
    cache = os.path.join(out, "cache", "espeak")
    os.makedirs(cache, exist_ok=True)
    pool = variants()
    rng.shuffle(pool)
    third = len(pool) // 3
    by_split = {"tune": pool[:third], "test": pool[third:2 * third]}
    held_out = sorted(pool[2 * third:])
    for split, count in (("tune", tune_n), ("test", test_n)):
        for c in range(count):
            n = 2 + c % 5  # 2..6 speakers
            chosen = rng.sample(by_split[split], n)
            voices = [Voice(f"v{i}", rng.choice(ACCENTS), v, rng.randint(130, 175),
                            rng.randint(30, 70)) for i, v in enumerate(chosen)]
            texts = list(SENTENCES)
            rng.shuffle(texts)
            cursor = [0]

            def lines(spk, kind):
                if kind == "back":
                    return voices[spk].say(rng.choice(BACKCHANNELS), cache)
                k = rng.randint(1, 3)
                parts = []
                for _ in range(k):
                    parts.append(texts[cursor[0] % len(texts)])
                    cursor[0] += 1
                return voices[spk].say(" ".join(parts), cache)

            overlap = c % 3 == 2
            utts = conversation(rng, voices, lines, overlap, min_s=25 + 8 * n)
            pcm, ref = mix(utts)
            base = f"syn-{split}-{c:02d}-{n}spk" + ("-ov" if overlap else "")
            write_item(out, items, base, "synthetic", split, pcm, ref)
            if c % 4 == 1:
                write_item(out, items, base + "-phone", "synthetic-phone", split, pcm, ref,
                           channel="phone")
            if c % 4 == 3:
                write_item(out, items, base + "-noisy", "synthetic-noisy", split, pcm, ref,
                           channel="noisy", rng=rng)
            print(f"  {base}: {len(pcm) / SR:.0f} s, voices "
                  + ", ".join(f"{v.accent}+{v.variant}" for v in voices), flush=True)
    return {"tune": sorted(by_split["tune"]), "test": sorted(by_split["test"]),
            "held_out": held_out}


def fetch_ami(out, items):
    tests = os.path.join(out, "cache", "pyannote")
    data = os.path.join(tests, "pyannote_audio-4.0.7", "tests", "data")
    if not os.path.isdir(data):
        os.makedirs(tests, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "pyannote-audio==4.0.7", "-d", tests])
        with tarfile.open(os.path.join(tests, "pyannote_audio-4.0.7.tar.gz")) as t:
            members = [m for m in t.getmembers() if "/tests/data/" in m.name]
            t.extractall(tests, members=members, filter="data")
    for lst, split in (("train", "tune"), ("development", "test"), ("test", "test")):
        refs = {}
        with open(os.path.join(data, f"debug.{lst}.rttm")) as f:
            for line in f:
                p = line.split()
                refs.setdefault(p[1], []).append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
        for uri, ref in sorted(refs.items()):
            src = os.path.join(data, uri + ".wav")
            if not os.path.exists(src):
                src = os.path.join(data, uri.replace("trn", "trñ") + ".wav")
            names = sorted({s for _, _, s in ref})
            ref = sorted((a, b, names.index(s)) for a, b, s in ref)
            pcm = read_wav(src)
            write_item(out, items, f"ami-{uri}", "ami", split, pcm, ref)
            write_item(out, items, f"ami-{uri}-phone", "ami-phone", split, pcm, ref,
                       channel="phone")


def debs(out):
    root = os.path.join(out, "cache", "debs")
    if not os.path.isdir(os.path.join(root, "usr")):
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "pocketsphinx-testdata",
                            "asterisk-core-sounds-en-wav", "codec2-examples"],
                           check=True, cwd=tmp, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            for deb in glob.glob(os.path.join(tmp, "*.deb")):
                run(["dpkg-deb", "-x", deb, root])
    return os.path.join(root, "usr", "share")


def utterances_of(paths, min_len=1.0, max_len=6.0):
    """Cuts recordings at pauses of 0.4 s or more into utterances of 1-6 s."""
    out = []
    for p in paths:
        pcm = read_wav(p)
        for a, b in speech_regions(pcm, bridge=0.4):
            seg = pcm[int(a * SR):int(b * SR)]
            while len(seg) > max_len * SR:
                out.append(seg[:int(max_len * SR)])
                seg = seg[int(max_len * SR):]
            if len(seg) >= min_len * SR:
                out.append(seg)
    return out


def real_mix(out, items, rng, count):
    share = debs(out)
    c2 = os.path.join(share, "codec2", "wav")
    allison = os.path.join(share, "asterisk", "sounds", "en_US_f_Allison")
    voices = {
        "librivox": sorted(glob.glob(os.path.join(share, "pocketsphinx", "test", "data",
                                                  "librivox", "*.wav"))),
        "allison": sorted(glob.glob(os.path.join(allison, "*.wav")))[:60],
        "ve9qrp": [os.path.join(c2, "ve9qrp.wav")],
        "vk5qi": [os.path.join(c2, "vk5qi.wav")],
    }
    pools = {k: utterances_of(v) for k, v in voices.items()}
    names = sorted(pools)
    for c in range(count):
        n = 2 + c % 3
        chosen = rng.sample(names, n)
        used = {k: 0 for k in chosen}

        def lines(spk, kind):
            pool = pools[chosen[spk]]
            if kind == "back":
                # A back-channel: at most 1.2 s of one of this voice's utterances.
                return trim(rng.choice(pool)[:int(rng.uniform(0.6, 1.2) * SR)]) or pool[0][:SR]
            k = used[chosen[spk]]
            used[chosen[spk]] += 2
            return pool[k % len(pool)] + [0.0] * int(0.2 * SR) + pool[(k + 1) % len(pool)]

        pcm, ref = mix(conversation(rng, chosen, lines, c % 2 == 1, min_s=30 + 5 * n))
        base = f"real-mix-{c:02d}-{n}spk" + ("-ov" if c % 2 == 1 else "")
        write_item(out, items, base, "real-mix", "test", pcm, ref, voices=chosen)
        write_item(out, items, base + "-phone", "real-mix-phone", "test", pcm, ref,
                   channel="phone", voices=chosen)
        print(f"  {base}: {len(pcm) / SR:.0f} s, voices {', '.join(chosen)}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.expanduser(
        "~/.cache/voxfleet/diarize-devset"))
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--tune", type=int, default=20, help="synthetic tune conversations")
    ap.add_argument("--test", type=int, default=20, help="synthetic test conversations")
    ap.add_argument("--real-mix", type=int, default=8, help="real-voice conversations")
    args = ap.parse_args()
    manifest = os.path.join(args.out, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            if json.load(f).get("version") == VERSION:
                print(f"dev set already built: {manifest}")
                return
        print(f"dev set of an older version: building it again", flush=True)
    for d in ("audio", "rttm"):
        shutil.rmtree(os.path.join(args.out, d), ignore_errors=True)
        os.makedirs(os.path.join(args.out, d))
    rng = random.Random(args.seed)
    items = []
    print("synthetic conversations (espeak-ng)", flush=True)
    split = synthetic(args.out, items, rng, args.tune, args.test)
    print("AMI excerpts (pyannote-audio 4.0.7 source archive)", flush=True)
    fetch_ami(args.out, items)
    print("real-voice conversations (Debian packages)", flush=True)
    real_mix(args.out, items, rng, args.real_mix)
    tmp = manifest + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"version": VERSION, "seed": args.seed, "variants": split, "items": items}, f,
                  indent=1)
    os.replace(tmp, manifest)
    print(f"{len(items)} recordings, manifest {manifest}")


if __name__ == "__main__":
    main()
