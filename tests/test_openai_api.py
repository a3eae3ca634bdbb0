"""The OpenAI-compatible API, checked with the official `openai` client against the running server."""

from __future__ import annotations

import enum
import json
import re
import time
import urllib.request
from typing import Literal

import openai
import pytest
from load_mix import post_json
from pydantic import BaseModel

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


# -- the Responses API and structured output ----------------------------------------------------
class Sentiment3(BaseModel):
    label: Literal["negative", "neutral", "positive"]


class Sentiment7(BaseModel):
    label: Literal["strong negative", "moderately negative", "mildly negative", "neutral", "mildly positive",
                   "moderately positive", "strong positive"]


class Label3(str, enum.Enum):  # pydantic writes an Enum class as a $ref into $defs
    negative = "negative"
    neutral = "neutral"
    positive = "positive"


class SentimentEnum(BaseModel):
    sentiment: Label3


def test_responses_classify_the_last_user_message(oa):
    text = "Globex files for bankruptcy protection"
    chat = oa.chat.completions.create(model="finsent-7", messages=[{"role": "user", "content": text}])
    plain = oa.responses.create(model="finsent-7", input=text)
    assert plain.output_text == "strong negative" == chat.choices[0].message.content
    assert plain.id.startswith("resp_") and plain.object == "response" and plain.status == "completed"
    message = plain.output[0]
    assert message.type == "message" and message.id.startswith("msg_") and message.role == "assistant"
    assert message.status == "completed" and message.content[0].type == "output_text"
    assert message.content[0].annotations == []
    assert plain.usage.input_tokens == chat.usage.prompt_tokens and plain.usage.output_tokens == 1
    assert plain.usage.total_tokens == plain.usage.input_tokens + 1
    assert abs(plain.created_at - time.time()) < 120
    items = oa.responses.create(model="finsent-3", instructions="Label the headline.", input=[
        {"role": "user", "content": "Hooli schedules its annual general meeting"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "neutral"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Initech raises "},
                                                        {"type": "input_text", "text": "full-year guidance"}]}],
        include=["message.output_text.logprobs"], top_logprobs=2)
    assert items.output_text == "positive" and items.instructions == "Label the headline."
    logprobs = items.output[0].content[0].logprobs[0]
    assert logprobs.token == "positive" and [t.token for t in logprobs.top_logprobs][0] == "positive"
    assert len(logprobs.top_logprobs) == 2 and logprobs.logprob <= 0


def test_responses_stream_in_the_responses_event_shapes(oa):
    events = list(oa.responses.create(model="finsent-7", input="Vandelay shares soar 40% after record profit",
                                      stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done"} <= set(kinds)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "strong positive"
    assert events[-1].response.output_text == "strong positive" and events[-1].response.usage.output_tokens == 1
    with oa.responses.stream(model="finsent-3", input="Umbrella Group cuts full-year guidance") as stream:
        final = stream.get_final_response()
    assert final.output_text == "negative" and final.status == "completed"


def test_structured_output_answers_the_label_as_json(oa):
    """A JSON schema whose one string property's enum is the label set: {"<property>": "<label>"}, so
    the client's .parse() (and langchain's with_structured_output(method="json_schema")) work."""
    messages = [{"role": "user", "content": "Initech raises full-year guidance"}]
    parsed = oa.chat.completions.parse(model="finsent-3", messages=messages, response_format=Sentiment3)
    assert parsed.choices[0].message.parsed == Sentiment3(label="positive")
    assert json.loads(parsed.choices[0].message.content) == {"label": "positive"}
    by_ref = oa.chat.completions.parse(model="finsent-3", messages=messages, response_format=SentimentEnum)
    assert by_ref.choices[0].message.parsed.sentiment is Label3.positive
    raw = {"type": "json_schema", "json_schema": {"name": "s", "schema": {
        "type": "object", "properties": {"tone": {"type": "string", "enum": list(reversed(LABELS_7))}}}}}
    streamed = list(oa.chat.completions.create(model="finsent-7", messages=messages, response_format=raw, stream=True))
    assert json.loads("".join(c.choices[0].delta.content or "" for c in streamed))["tone"] in LABELS_7
    text = oa.chat.completions.create(model="finsent-3", messages=messages, response_format={"type": "text"})
    assert text.choices[0].message.content == "positive"
    response = oa.responses.parse(model="finsent-3", input="Umbrella Group cuts full-year guidance",
                                  text_format=Sentiment3)
    assert response.output_parsed == Sentiment3(label="negative")


def _bad_request(call) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as refused:
        call()
    return refused.value


def test_what_is_not_supported_is_a_clear_400(oa):
    """Never silently ignored: tools, other schemas, JSON mode, stored state, unknown fields."""
    messages = [{"role": "user", "content": "Initech raises full-year guidance"}]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    chat = lambda **extra: oa.chat.completions.create(model="finsent-3", messages=messages, **extra)  # noqa: E731
    error = _bad_request(lambda: chat(tools=[tool], tool_choice="required"))
    assert error.code == "unsupported_parameter" and error.param == "tools" and "function calling" in error.message
    assert _bad_request(lambda: chat(tool_choice="required")).param == "tool_choice"
    error = _bad_request(lambda: chat(response_format={"type": "json_object"}))
    assert error.code == "unsupported_parameter" and "json_schema" in error.message
    error = _bad_request(lambda: oa.chat.completions.parse(model="finsent-7", messages=messages,
                                                           response_format=Sentiment3))  # 3 labels for finsent-7
    assert error.param == "response_format" and "strong positive" in error.message
    two = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "properties": {
        "label": {"type": "string", "enum": ["negative", "neutral", "positive"]}, "why": {"type": "string"}}}}}
    assert _bad_request(lambda: chat(response_format=two)).code == "unsupported_parameter"
    error = _bad_request(lambda: oa.chat.completions.create(model="trained-sentiment-f16", messages=messages,
                                                            max_tokens=2, response_format=two))
    assert "finsent-7" in error.message
    respond = lambda **extra: oa.responses.create(**{"model": "finsent-3", "input": "Profit rose", **extra})  # noqa: E731
    assert _bad_request(lambda: respond(tools=[{"type": "function", "name": "f", "parameters": {}}])).param == "tools"
    assert _bad_request(lambda: respond(text={"format": {"type": "json_object"}})).param == "text.format"
    error = _bad_request(lambda: respond(previous_response_id="resp_1"))
    assert error.code == "unsupported_parameter" and error.param == "previous_response_id"
    error = _bad_request(lambda: respond(extra_body={"messages": []}))
    assert error.code == "unknown_parameter" and error.param == "messages"
    error = _bad_request(lambda: respond(model="trained-sentiment-f16"))
    assert error.param == "model" and "/v1/chat/completions" in error.message
    image = [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]}]
    assert _bad_request(lambda: respond(input=image)).param == "input[0]"
    assert "no user message" in _bad_request(lambda: respond(input=[{"role": "system", "content": "x"}])).message
    assert _bad_request(lambda: respond(input="  ")).code == "empty_text"
    with pytest.raises(openai.NotFoundError):
        respond(model="gpt-4o")


def test_langchain_as_a_new_user_meets_it(server):
    """langchain-openai, as the README shows it: chat completions, the Responses API
    (use_responses_api=True, a 404 before), with_structured_output(method="json_schema") (it failed far
    from the cause when response_format was ignored), and function calling refused at the cause."""
    from langchain_openai import ChatOpenAI

    common = {"base_url": server.url + "/v1", "api_key": "unused", "max_retries": 0, "timeout": 60}
    chat = ChatOpenAI(model="finsent-3", **common)
    assert chat.invoke("Umbrella Group cuts full-year guidance").content == "negative"
    responses = ChatOpenAI(model="finsent-3", use_responses_api=True, **common)
    assert responses.invoke("Initech raises full-year guidance").text == "positive"
    structured = ChatOpenAI(model="finsent-7", **common).with_structured_output(Sentiment7, method="json_schema")
    assert structured.invoke("Globex files for bankruptcy protection") == Sentiment7(label="strong negative")
    tools = ChatOpenAI(model="finsent-3", **common).with_structured_output(Sentiment3, method="function_calling")
    with pytest.raises(openai.BadRequestError, match=r"tools \(function calling\) is not supported: finsent models "):
        tools.invoke("Initech raises full-year guidance")
