"""The FinSent API and operations routes, through the real server and through Flask's test client."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import run_finsent
from sentiment_data import coarse_label


def http(method: str, url: str, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_classify_held_out_through_the_real_server(server, held_out):
    texts = [t for t, _ in held_out]
    for scheme, expected, minimum in (("7", [l for _, l in held_out], 0.9),
                                      ("3", [coarse_label(l) for _, l in held_out], 0.95)):
        status, _, body = http("POST", server.url + "/v1/classify", {"texts": texts, "scheme": scheme})
        assert status == 200
        results = json.loads(body)["results"]
        assert len(results) == len(texts)
        assert sum(r["label"] == e for r, e in zip(results, expected)) / len(texts) >= minimum
        for r in results:
            assert set(r) == {"label", "score", "probs", "cached", "truncated"}


def test_label_route_for_spreadsheets(server):
    text = "Vandelay shares soar 40% after record profit"
    status, headers, body = http("GET", server.url + "/v1/label?" + urllib.parse.urlencode({"text": text, "scheme": "7"}))
    assert status == 200 and body == "strong positive"
    assert headers["Content-Type"].startswith("text/plain")
    status, _, body = http("GET", server.url + "/v1/label?scheme=3&text=" + urllib.parse.quote(text))
    assert (status, body) == (200, "positive")
    assert http("GET", server.url + "/v1/label?scheme=7&text=")[::2] == (200, "")  # blank cell, blank result
    status, _, body = http("GET", server.url + "/v1/label?scheme=5&text=x")
    assert status == 400 and body == '#FINSENT! scheme must be "3" or "7" (got \'5\')'


def test_repeats_are_served_from_cache(server):
    text = "Sterling Cooper reports a solid quarterly profit"
    first = json.loads(http("POST", server.url + "/v1/classify", {"text": text})[2])
    second = json.loads(http("POST", server.url + "/v1/classify", {"text": text})[2])
    assert first["cached"] is False and second["cached"] is True
    assert {k: v for k, v in first.items() if k != "cached"} == {k: v for k, v in second.items() if k != "cached"}
    metrics = http("GET", server.url + "/metrics")[2]
    hits = [line for line in metrics.splitlines() if line.startswith("finsent_cache_hits_total")]
    assert int(hits[0].split()[1]) >= 1
    assert "cache_hits=1" in server.log()


def test_sixteen_concurrent_clients(server, held_out):
    texts = [t for t, _ in held_out] + [f"Acme Corp update number {i}" for i in range(40)]
    labels = {"strong negative", "moderately negative", "mildly negative", "neutral", "mildly positive",
              "moderately positive", "strong positive"}
    failures, answers = [], []

    def client(index: int):
        for k in range(8):  # a bounded number of requests each
            text = texts[(index * 8 + k) % len(texts)]
            status, _, body = http("POST", server.url + "/v1/classify", {"texts": [text, text + " today"]})
            if status != 200:
                failures.append((status, body))
                continue
            answers.extend(r["label"] for r in json.loads(body)["results"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures
    assert len(answers) == 16 * 8 * 2 and set(answers) <= labels
    batches = [l for l in http("GET", server.url + "/metrics")[2].splitlines() if l.startswith("finsent_batch_texts_count")]
    assert int(batches[0].split()[1]) > 0


def test_health_and_openapi_cover_every_route(client):
    assert client.get("/health").json["status"] == "ok"
    spec = client.get("/openapi.json").json
    # Flask writes a path parameter as <name> (or <converter:name>), OpenAPI as {name}.
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in client.application.url_map.iter_rules()}
    assert routes <= set(spec["paths"]), routes - set(spec["paths"])


@pytest.mark.parametrize("body, status, code", [
    (b"not json", 400, "invalid_json"),
    ([1, 2], 400, "invalid_json"),
    ({"texts": ["a"], "scheme": "5"}, 400, "invalid_scheme"),
    ({"scheme": "7"}, 400, "invalid_request"),
    ({"texts": []}, 400, "invalid_request"),
    ({"texts": "a string"}, 400, "invalid_request"),
    ({"text": "a", "texts": ["b"]}, 400, "invalid_request"),
    ({"texts": ["x"] * 300}, 413, "too_many_texts"),
])
def test_classify_errors(client, body, status, code):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/v1/classify", data=data, content_type="application/json")
    assert response.status_code == status
    error = response.json["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_item_errors_do_not_fail_the_batch(client):
    response = client.post("/v1/classify", json={"texts": ["", 42, "x" * 40_000, "Hooli raises full-year guidance"],
                                                 "scheme": "3"})
    assert response.status_code == 200
    results = response.json["results"]
    assert [r.get("error", {}).get("code") for r in results] == ["empty_text", "invalid_text", "text_too_long", None]
    assert results[3]["label"] == "positive"


def test_body_too_large(client):
    response = client.post("/v1/classify", data=b"{" + b" " * (5 * 1024 * 1024) + b"}", content_type="application/json")
    assert response.status_code == 413 and response.json["error"]["code"] == "request_too_large"


def test_unknown_route_is_json(client):
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_full_queue_is_503_with_retry_after(loaded_runtime):
    from finsent_local.server import create_app
    from finsent_local.server.runtime import Runtime
    from finsent_local.engine.service import ClassificationService
    from finsent_local.engine.worker import EngineWorker

    # A second worker on the same engine, allowed only 2 queued texts; it is never started on work
    # that would race the first, because the request is refused before it reaches the engine.
    engine = loaded_runtime.service.worker.engine
    tiny = Runtime(model_path=loaded_runtime.model_path)
    tiny.service = ClassificationService(EngineWorker(engine, max_queued_texts=2), None)
    response = create_app(tiny).test_client().post("/v1/classify", json={"texts": ["a b", "c d", "e f"]})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json["error"]["code"] == "server_busy"
    tiny.service.worker.close()


def test_not_loaded_yet(trained_gguf):
    from finsent_local.server import create_app
    from finsent_local.server.runtime import Runtime

    client = create_app(Runtime(model_path=trained_gguf["f16"])).test_client()
    assert client.get("/health").status_code == 503
    response = client.post("/v1/classify", json={"text": "x"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert response.json["error"]["code"] == "model_loading"


def test_api_key(loaded_runtime):
    from finsent_local.server import ServerConfig, create_app

    client = create_app(loaded_runtime, ServerConfig(api_key="s3cret")).test_client()
    assert client.get("/health").status_code == 200  # open for load balancers and scripts
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.post("/v1/classify", json={"text": "x"}, headers=headers)
        assert response.status_code == 401 and response.json["error"]["code"] == "invalid_api_key"
    assert client.get("/metrics").status_code == 401
    ok = client.post("/v1/classify", json={"text": "Initech raises full-year guidance", "scheme": "3"},
                     headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json["label"] == "positive"
    assert client.get("/v1/label?text=Initech%20raises%20full-year%20guidance&scheme=3&key=s3cret").data == b"positive"
    refused = client.get("/v1/label?text=Initech%20raises&scheme=3")
    assert refused.status_code == 401 and "?key=<key>" in refused.get_data(as_text=True)  # what WEBSERVICE can send


def test_cors_only_for_listed_origins(loaded_runtime):
    from finsent_local.server import ServerConfig, create_app

    closed = create_app(loaded_runtime).test_client()
    assert "Access-Control-Allow-Origin" not in closed.get("/health", headers={"Origin": "https://evil.example"}).headers
    origin = "https://addin.xlwings.org"
    open_ = create_app(loaded_runtime, ServerConfig(cors_origins=(origin,))).test_client()
    preflight = open_.options("/v1/classify", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Private-Network": "true"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == origin
    assert preflight.headers["Access-Control-Allow-Private-Network"] == "true"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = open_.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_settings_are_read_from_app_config_on_each_request(loaded_runtime):
    """One source of settings: `app.config["FINSENT"]`, read by every check when a request comes (the
    HTTPS port is known only after start, and each check sees the change at once)."""
    from dataclasses import replace

    from finsent_local.server import ServerConfig, create_app

    app = create_app(loaded_runtime)
    client = app.test_client()
    assert client.get("/addin/manifest.xml").status_code == 404  # no HTTPS listener yet
    assert client.post("/v1/classify", json={"text": "x"}, headers={"Host": "finsent.lan"}).status_code == 403
    app.config["FINSENT"] = replace(app.config["FINSENT"], https_port=9443, allowed_hosts=("finsent.lan",),
                                    cors_origins=("https://addin.xlwings.org",))
    assert client.get("/addin/manifest.xml").headers["Location"] == "https://localhost:9443/addin/manifest.xml"
    assert client.post("/v1/classify", json={"text": "Initech raises full-year guidance"},
                       headers={"Host": "finsent.lan"}).status_code == 200
    origin = {"Origin": "https://addin.xlwings.org"}
    assert client.get("/health", headers=origin).headers["Access-Control-Allow-Origin"] == origin["Origin"]
    app.config["FINSENT"] = ServerConfig(api_key="k")
    assert client.post("/v1/classify", json={"text": "x"}).status_code == 401


def test_refuses_public_bind_without_key(trained_gguf):
    code, _, stderr = run_finsent("serve", "--model", str(trained_gguf["f16"]), "--host", "0.0.0.0", "--port", "0",
                                  env={"FINSENT_API_KEY": ""})
    assert code != 0
    assert stderr.strip().splitlines()[-1].startswith("Error: refusing to listen on 0.0.0.0 without an API key")


def test_missing_model_file_is_one_line(tmp_path):
    code, _, stderr = run_finsent("serve", "--model", str(tmp_path / "none.gguf"))
    assert code != 0 and stderr.strip().splitlines() == [f"Error: model file not found: {tmp_path / 'none.gguf'} (from --model)"]


def test_classify_command(trained_gguf, tmp_path):
    env = {"FINSENT_CACHE_DIR": str(tmp_path)}
    code, stdout, stderr = run_finsent("classify", "--model", str(trained_gguf["q4_k_m"]), "--scheme", "3",
                                       "Globex files for bankruptcy protection", "Hooli raises full-year guidance", env=env)
    assert code == 0, stderr
    assert [line.split("\t")[0] for line in stdout.splitlines()] == ["negative", "positive"]
    code, stdout, _ = run_finsent("classify", "--model", str(trained_gguf["q4_k_m"]), "--json",
                                  "Hooli raises full-year guidance", env=env)
    assert code == 0 and json.loads(stdout)["label"].endswith("positive")
    code, stdout, _ = run_finsent("classify", "--model", str(trained_gguf["q4_k_m"]), " ", env=env)
    assert code == 1 and stdout.startswith("#FINSENT! text is empty")


def test_serve_without_any_model_and_no_hub_is_one_line(tmp_path):
    """No --model, no FINSENT_MODEL, nothing converted yet, hub unreachable: one clear line."""
    code, stdout, stderr = run_finsent("serve", "--port", "0", env={
        "FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": "", "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf")})
    assert code != 0
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("No model yet: downloading oopere/Llama-FinSent-S")
    assert lines[-1].startswith(
        "Error: cannot download oopere/Llama-FinSent-S: the hub is unreachable in offline mode (HF_HUB_OFFLINE=1) and "
        "it is not in the local cache. No network? ")
    # the exact command that makes the file serve looks for (tests/test_first_run.py runs it)
    assert (f"finsent convert /path/to/Llama-FinSent-S --outtype q4_k_m --outfile "
            f"{tmp_path / 'cache' / 'models' / 'Llama-FinSent-S-Q4_K_M.gguf'}. ") in lines[-1]
    assert lines[-1].endswith("To use a GGUF file you already have: --model PATH or FINSENT_MODEL=PATH")
    assert "Traceback" not in stderr and stdout == ""
    assert not (tmp_path / "cache" / "models").exists()  # no empty folder left behind


def test_classify_offline_names_the_model_option(tmp_path):
    code, stdout, stderr = run_finsent("classify", "Profit rose", env={
        "FINSENT_CACHE_DIR": str(tmp_path / "cache"), "FINSENT_MODEL": "", "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf")})
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines()[-1].endswith("--model PATH or FINSENT_MODEL=PATH")
    assert not (tmp_path / "cache" / "models").exists()
