"""The OpenAI-compatible API, checked with the official `openai` client against the running server."""

from __future__ import annotations

import re
import time
import urllib.request

import openai
import pytest
from load_mix import post_json

from finsent_local.engine.labels import LABELS_7


@pytest.fixture(scope="module")
def oa(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_list(oa, server):
    ids = [m.id for m in oa.models.list()]
    assert ids == ["trained-sentiment-f16", "finsent-7", "finsent-3"]


def test_chat_classifies_the_last_user_message(oa):
    reply = oa.chat.completions.create(model="finsent-7", messages=[
        {"role": "system", "content": "You are a classifier."},
        {"role": "user", "content": "Hooli schedules its annual general meeting"},
        {"role": "assistant", "content": "neutral"},
        {"role": "user", "content": "Globex files for bankruptcy protection"},
    ])
    assert reply.choices[0].message.content == "strong negative"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens > 0


def test_chat_logprobs(oa):
    reply = oa.chat.completions.create(model="finsent-3", logprobs=True, top_logprobs=3,
                                       messages=[{"role": "user", "content": "Initech raises full-year guidance"}])
    content = reply.choices[0].logprobs.content[0]
    assert content.token == "positive" == reply.choices[0].message.content
    assert [t.token for t in content.top_logprobs][0] == "positive"
    assert {t.token for t in content.top_logprobs} == {"negative", "neutral", "positive"}
    assert content.logprob == content.top_logprobs[0].logprob <= 0


def test_chat_streaming(oa):
    stream = oa.chat.completions.create(model="finsent-7", stream=True,
                                        messages=[{"role": "user", "content": "Vandelay shares soar 40% after record profit"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "strong positive"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streams_end_with_the_usage_when_asked(oa):
    """stream_options.include_usage, as OpenAI sends it: every chunk has usage null, then one last chunk
    with no choices and the usage, the same as the answer without streaming reports."""
    messages = [{"role": "user", "content": "Vandelay shares soar 40% after record profit"}]
    plain = oa.chat.completions.create(model="finsent-7", messages=messages)
    chunks = list(oa.chat.completions.create(model="finsent-7", messages=messages, stream=True,
                                             stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "strong positive"
    prompts = ["Umbrella Group cuts full-year guidance", "Hooli raises full-year guidance"]
    batch = list(oa.completions.create(model="finsent-3", prompt=prompts, stream=True,
                                       stream_options={"include_usage": True}))
    assert batch[-1].choices == [] and batch[-1].usage.completion_tokens == 2
    generated = list(oa.completions.create(model="trained-sentiment-f16", prompt="Profit", max_tokens=3,
                                           stream=True, stream_options={"include_usage": True}))
    assert generated[-1].choices == [] and 1 <= generated[-1].usage.completion_tokens <= 3
    without = list(oa.chat.completions.create(model="finsent-7", messages=messages, stream=True))
    assert without[-1].choices and all(c.usage is None for c in without)  # not asked: no usage chunk


def test_completions_classify_the_prompt(oa):
    reply = oa.completions.create(model="finsent-3", prompt="Umbrella Group cuts full-year guidance", logprobs=2)
    assert reply.choices[0].text == "negative"
    assert list(reply.choices[0].logprobs.top_logprobs[0])[0] == "negative"
    streamed = list(oa.completions.create(model="finsent-3", prompt="Umbrella Group cuts full-year guidance", stream=True))
    assert "".join(c.choices[0].text for c in streamed) == "negative"


def test_completions_with_a_list_of_prompts_classify_each(oa, server):
    """OpenAI's batch form: one choice per prompt, `index` its position, the labels of /v1/classify."""
    prompts = ["Umbrella Group cuts full-year guidance", "Hooli raises full-year guidance",
               "Initech schedules its annual general meeting"] * 3
    reply = oa.completions.create(model="finsent-3", prompt=prompts, logprobs=3)
    assert [c.index for c in reply.choices] == list(range(len(prompts)))
    direct = post_json(server.url + "/v1/classify", {"texts": prompts, "scheme": "3"})
    assert [c.text for c in reply.choices] == [r["label"] for r in direct["results"]]
    assert reply.choices[0].text == "negative" and reply.choices[1].text == "positive"
    assert set(reply.choices[4].logprobs.top_logprobs[0]) == {"negative", "neutral", "positive"}
    assert reply.usage.completion_tokens == len(prompts) and reply.usage.prompt_tokens > 10 * len(prompts)
    streamed = list(oa.completions.create(model="finsent-3", prompt=prompts[:3], stream=True))
    texts = {}
    for chunk in streamed:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert texts == {0: "negative", 1: "positive", 2: reply.choices[2].text}
    with pytest.raises(openai.BadRequestError) as blank:  # a bad prompt is named by its index
        oa.completions.create(model="finsent-3", prompt=["Hooli raises full-year guidance", " "])
    assert blank.value.code == "empty_text" and blank.value.param == "prompt[1]"
    with pytest.raises(openai.BadRequestError) as raw:
        oa.completions.create(model="trained-sentiment-f16", prompt=["a", "b"])
    assert raw.value.param == "prompt"
    with pytest.raises(openai.APIStatusError) as many:
        oa.completions.create(model="finsent-3", prompt=["Profit rose"] * 257)
    assert many.value.status_code == 413 and many.value.code == "too_many_texts"


def test_raw_model_generates(oa):
    first = oa.completions.create(model="trained-sentiment-f16", prompt="Acme Corp", max_tokens=6, temperature=0.9, seed=7)
    again = oa.completions.create(model="trained-sentiment-f16", prompt="Acme Corp", max_tokens=6, temperature=0.9, seed=7)
    assert first.choices[0].text == again.choices[0].text
    assert first.choices[0].finish_reason in ("length", "stop")
    assert first.usage.completion_tokens <= 6
    chat = oa.chat.completions.create(model="trained-sentiment-f16", max_tokens=4, temperature=0,
                                      messages=[{"role": "user", "content": "Hello"}])
    assert chat.choices[0].message.role == "assistant"
    parts = list(oa.chat.completions.create(model="trained-sentiment-f16", max_tokens=4, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": "Hello"}]))
    assert "".join(p.choices[0].delta.content or "" for p in parts) == chat.choices[0].message.content


def test_stop_sequences(oa):
    full = oa.completions.create(model="trained-sentiment-f16", prompt="Acme Corp", max_tokens=8, temperature=0)
    text = full.choices[0].text
    assert len(text) > 2
    stop = text[2:4]
    cut = oa.completions.create(model="trained-sentiment-f16", prompt="Acme Corp", max_tokens=8, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_errors_in_openai_shape(oa):
    with pytest.raises(openai.NotFoundError) as missing:
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        oa.chat.completions.create(model="finsent-7", messages=[{"role": "user", "content": "   "}])
    assert empty.value.code == "empty_text"
    with pytest.raises(openai.BadRequestError) as bad:
        oa.completions.create(model="trained-sentiment-f16", prompt="x", max_tokens=100000)
    assert bad.value.code == "invalid_parameter" and "max_tokens" in str(bad.value)


def test_bad_key_is_401(trained_gguf, tmp_path):
    from running_server import RunningServer

    running = RunningServer("--model", str(trained_gguf["q8_0"]), "--api-key", "s3cret-banner-key",
                            env={"FINSENT_CACHE_DIR": str(tmp_path)})
    try:
        # the banner's lines to try work once YOUR_KEY is replaced, and never show the key itself
        deadline = time.time() + 30
        while not any("OpenAI:" in line for line in running.lines) and time.time() < deadline:
            time.sleep(0.05)  # the banner's last lines are still being read
        tries = [line for line in running.lines if "curl '" in line or "WEBSERVICE(" in line]
        assert len(tries) == 2 and all("key=YOUR_KEY&" in line for line in tries) and "s3cret-banner-key" not in running.log()
        curl_url = re.search(r"curl '([^']+)'", tries[0]).group(1).replace("YOUR_KEY", "s3cret-banner-key")
        assert urllib.request.urlopen(curl_url, timeout=60).read().decode() in LABELS_7
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=running.url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=running.url + "/v1", api_key="s3cret-banner-key", max_retries=0)
        assert good.chat.completions.create(model="finsent-3", messages=[
            {"role": "user", "content": "Hooli raises full-year guidance"}]).choices[0].message.content == "positive"
    finally:
        running.stop()
