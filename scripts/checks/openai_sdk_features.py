"""Word timestamps, streaming, translations and models through the official OpenAI Python SDK,
against voxfleet's OpenAI-compatible endpoints.

usage: openai_sdk_features.py BASE_URL TOKEN ENGLISH_AUDIO GERMAN_AUDIO
Prints one JSON object with what the SDK parsed.
"""
import json
import sys

import openai

base, token, english, german = sys.argv[1:5]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0, timeout=300)
out = {}

with open(english, "rb") as f:
    r = client.audio.transcriptions.create(
        model="whisper-1",
        file=f,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in (r.words or [])]
    out["words_text"] = r.text
    out["words_segments"] = [{"start": s.start, "end": s.end} for s in (r.segments or [])]

with open(english, "rb") as f:
    events = []
    for ev in client.audio.transcriptions.create(model="whisper-1", file=f, stream=True, temperature=0.0):
        events.append(ev.model_dump())
    out["stream"] = events

with open(german, "rb") as f:
    r = client.audio.translations.create(model="whisper-1", file=f)
    out["translation"] = r.text
with open(german, "rb") as f:
    r = client.audio.translations.create(model="whisper-1", file=f, response_format="verbose_json")
    out["translation_task"] = getattr(r, "task", None)
try:
    with open(german, "rb") as f:
        client.audio.translations.create(model="tiny.en", file=f)
    out["translation_error"] = None
except openai.BadRequestError as e:
    out["translation_error"] = {"status": e.status_code, "code": e.code, "param": e.param}

out["models"] = [m.id for m in client.models.list()]
out["model"] = client.models.retrieve("whisper-1").model_dump()
try:
    client.models.retrieve("no-such-model")
    out["model_error"] = None
except openai.NotFoundError as e:
    out["model_error"] = {"status": e.status_code, "code": e.code}
print(json.dumps(out))
