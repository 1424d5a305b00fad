"""Calls voxfleet's OpenAI-compatible endpoint through the official OpenAI Python SDK.

usage: openai_sdk.py BASE_URL TOKEN AUDIO_FILE
Prints one JSON object: the SDK's parsed results for json, verbose_json, text and srt, and
the error the SDK raises for an unknown model.
"""
import json
import sys

import openai

base, token, path = sys.argv[1:4]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0, timeout=300)
out = {}
with open(path, "rb") as f:
    r = client.audio.transcriptions.create(model="whisper-1", file=f)
    out["json"] = r.text
with open(path, "rb") as f:
    r = client.audio.transcriptions.create(
        model="whisper-1",
        file=f,
        response_format="verbose_json",
        timestamp_granularities=["segment"],
        language="en",
    )
    out["verbose_language"] = r.language
    out["verbose_duration"] = r.duration
    out["verbose_segments"] = [
        {"start": s.start, "end": s.end, "text": s.text} for s in (r.segments or [])
    ]
with open(path, "rb") as f:
    out["text"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
with open(path, "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
try:
    with open(path, "rb") as f:
        client.audio.transcriptions.create(model="no-such-model", file=f)
    out["error"] = None
except openai.BadRequestError as e:
    out["error"] = {"status": e.status_code, "code": e.code, "param": e.param}
print(json.dumps(out))
