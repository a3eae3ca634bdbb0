"""The Office add-in (Excel for Mac, Excel on the web): everything up to Excel's edge.

Excel cannot run here, so its custom-functions runtime is a STAND-IN (CustomFunctions.associate and the
page's address, nothing else); everything else is real: the add-in's functions.js against the real
server (in Node, and in headless Chromium over HTTPS with the project's own certificate, trusted the way
a Linux user trusts it), the generated functions.json and manifest, the HTTPS listener, `finsent certs`.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import browser
from conftest import run_finsent
from running_server import RunningServer
from load_mix import post_json

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_JS = ROOT / "excel" / "addin" / "functions.js"
NODE = shutil.which("node")
CERTUTIL = shutil.which("certutil")


# -- one source of truth: definitions, functions.json, xlwings, functions.js -----------------------

def test_functions_json_comes_from_the_xlwings_definitions(client):
    from finsent_local.excel import finsent_udf
    from finsent_local.excel.functions import FUNCTIONS

    response = client.get("/addin/functions.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    metadata = response.json["functions"]
    assert [f["id"] for f in metadata] == [f.name for f in FUNCTIONS] == ["FINSENT", "FINSENT_SCORE", "FINSENT_PROBS",
                                                                                  "FINSENT_DOC", "FINSENT_DOC_SCORE",
                                                                                  "FINSENT.WHY"]
    assert [f["name"] for f in metadata] == [f["id"] for f in metadata]  # =LOCAL.FINSENT.WHY keeps its period
    for entry, definition in zip(metadata, FUNCTIONS):
        python_function = getattr(finsent_udf, definition.xlwings_name)  # FINSENT_WHY: VBA names have no "."
        assert entry["description"] == definition.description == python_function.__doc__
        assert [p["name"] for p in entry["parameters"]] == ["text", "scheme"]
        assert entry["parameters"][0]["dimensionality"] == "matrix" and entry["parameters"][1]["optional"] is True
        assert entry["result"] == {"type": "any", "dimensionality": "matrix"}
        assert re.fullmatch(r"[A-Z][A-Z0-9_.]{2,}", entry["id"])  # Office's rule for ids
    # functions.js registers exactly these ids, and its limits are the server's.
    source = FUNCTIONS_JS.read_text()
    assert re.search(r"const functions = \{ FINSENT, FINSENT_SCORE, FINSENT_PROBS, FINSENT_DOC, FINSENT_DOC_SCORE, "
                     r'"FINSENT\.WHY": FINSENT_WHY \};', source)
    from finsent_local.excel.cells import EXCEL_ERRORS, PREFIX
    from finsent_local.limits import DEFAULT_LIMITS

    from finsent_local.engine.labels import LABELS_7

    # The labels come from the server (GET /v1/status, see the PROBS case of blanks), not a copy.
    assert not [label for label in LABELS_7 if f'"{label}"' in source]
    assert f"const MAX_TEXT_CHARS = {DEFAULT_LIMITS.max_text_chars};" in source
    assert f"const MAX_TEXTS_PER_REQUEST = {DEFAULT_LIMITS.max_texts_per_request};" in source
    assert f'const PREFIX = "{PREFIX}";' in source
    assert set(re.findall(r'"(#[A-Z0-9/!?_]+)"', source)) == EXCEL_ERRORS


def test_manifest_is_well_formed_and_points_at_the_https_server():
    from finsent_local.excel.addin_manifest import ManifestError, addin_id, manifest_xml

    xml = manifest_xml("https://localhost:8443", api_key='k&"<')
    root = ET.fromstring(xml)
    ns = {"o": "http://schemas.microsoft.com/office/appforoffice/1.1",
          "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
          "ov": "http://schemas.microsoft.com/office/taskpaneappversionoverrides"}
    assert root.find("o:Id", ns).text == addin_id("https://localhost:8443") != addin_id("https://localhost:9443")
    urls = {u.get("id"): u.get("DefaultValue") for u in root.iter(f"{{{ns['bt']}}}Url")}
    assert urls["Functions.Metadata.Url"] == "https://localhost:8443/addin/functions.json"
    assert urls["Functions.Script.Url"] == "https://localhost:8443/addin/functions.js"
    # the key: in the fragment only, URL-encoded (an "&" would cut it short)
    assert urls["Shared.Url"] == "https://localhost:8443/addin/functions.html#key=k%26%22%3C"
    every_url = [e.get("DefaultValue") for e in root.iter() if (e.get("DefaultValue") or "").startswith("http")]
    assert every_url and all(u.startswith("https://localhost:8443/") for u in every_url)
    strings = {s.get("id"): s.get("DefaultValue") for s in root.iter(f"{{{ns['bt']}}}String")}
    assert strings["Functions.Namespace"] == "LOCAL"
    defined = set(urls) | set(strings) | {i.get("id") for i in root.iter(f"{{{ns['bt']}}}Image")}
    used = {e.get("resid") for e in root.iter() if e.get("resid")}
    assert used <= defined, used - defined  # every resource the manifest refers to exists
    runtime = root.find(".//ov:Runtime", ns)
    assert runtime.get("lifetime") == "long" and runtime.get("resid") == "Shared.Url"
    # "Freeze as values": a Home tab button opening the shared runtime's page as the task pane
    button = root.find(".//ov:Control[@id='FinSent.FreezeButton']", ns)
    action = button.find("ov:Action", ns)
    assert action.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "ShowTaskpane"
    assert action.find("ov:SourceLocation", ns).get("resid") == "Shared.Url"
    assert strings["FreezeButton.Label"] == "Freeze as values"
    with pytest.raises(ManifestError, match="https"):
        manifest_xml("http://127.0.0.1:8000")


def test_addin_routes_headers_and_key_rules(loaded_runtime):
    from finsent_local.server import ServerConfig, create_app

    client = create_app(loaded_runtime, ServerConfig(api_key="k")).test_client()
    expected = {"functions.js": "text/javascript", "freeze.js": "text/javascript", "functions.html": "text/html",
                "icon-32.png": "image/png",
                "icon-80.png": "image/png", "functions.json": "application/json"}
    for name, mimetype in expected.items():
        response = client.get(f"/addin/{name}")  # open without the key: Excel loads them before any call
        assert response.status_code == 200 and response.mimetype == mimetype, name
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'self' https://*.officeapps.live.com" in csp  # Excel on the web frames the page
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
        assert client.get(f"/addin/{name}", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    assert client.get("/addin/../tls.py").status_code == 404
    assert client.get("/addin/cells.py").status_code == 404
    plain = client.get("/addin/manifest.xml")  # over plain HTTP, no HTTPS listener: a JSON error saying why
    assert plain.status_code == 404 and plain.json["error"]["code"] == "https_required"
    assert "--https-port" in plain.json["error"]["message"]
    secure = client.get("/addin/manifest.xml", base_url="https://localhost:8443")
    assert secure.status_code == 200 and secure.mimetype == "application/xml"
    assert "https://localhost:8443/addin/functions.json" in secure.get_data(as_text=True)
    assert "#key=" not in secure.get_data(as_text=True)  # an open route never hands out the key
    assert client.post("/v1/classify", json={"text": "x"}).status_code == 401  # the API keeps its key
    png = client.get("/addin/icon-32.png").data
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == (32).to_bytes(4, "big") * 2  # a 32x32 PNG


# -- functions.js against the real server, compared with the xlwings functions ----------------------

LONG = "x" * 32_768


def addin_cases() -> list[tuple[str, list]]:
    """(function, args) pairs as Excel passes them: ranges as 2-D arrays, blanks as "" or null."""
    headlines = ["Virtucon shares plunged after a profit warning", "Nakatomi Trading raises full-year guidance",
                 "Dunder Mifflin schedules its annual general meeting"]
    mixed = [[headlines[0], ""], [None, "   "], [42, True], ["#N/A", LONG], ["\ud800 lone surrogate", headlines[1]]]
    return [
        ("FINSENT", [[[headlines[0]]], "7"]),
        ("FINSENT", [[[headlines[1]]], None]),  # omitted scheme: "7"
        ("FINSENT", [[[headlines[2]]], 3]),  # a number for the scheme
        ("FINSENT", [[[headlines[2]]], "3"]),
        ("FINSENT", [[[headlines[2]]], ""]),  # a blank scheme cell: "7"
        ("FINSENT", [[[headlines[2]]], "9"]),  # not a scheme: one message
        ("FINSENT", [mixed, "7"]),
        ("FINSENT_SCORE", [mixed, "3"]),
        ("FINSENT_PROBS", [[[headlines[0], headlines[1]], ["", 7]], "7"]),
        ("FINSENT_PROBS", [[[""], [None]], "3"]),  # nothing to classify: the scheme's labels as the header
        ("FINSENT_DOC", [[[f"{headlines[1]}. {headlines[0]}. {headlines[1]}."], [""], [42]], "3"]),
        ("FINSENT_DOC_SCORE", [[[f"QUARTERLY REPORT\n{headlines[0]}. {headlines[2]}."], ["x" * 40_000]], "7"]),
        ("FINSENT_DOC", [[[headlines[0]]], "9"]),
    ]


def run_addin_functions(server_url: str, phases: list[list[dict]]) -> dict:
    proc = subprocess.run([NODE, str(ROOT / "tests" / "js" / "run_addin_functions.mjs"), str(FUNCTIONS_JS), server_url],
                          input=json.dumps(phases), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def python_cells(function: str, args: list, url: str, monkeypatch) -> list[list]:
    """What the xlwings function gives for the same arguments (as a grid: xlwings passes ranges as
    ndim=2 lists; a whole-call message is one cell)."""
    from finsent_local.excel import cells, finsent_udf
    from finsent_local.excel.functions import BY_NAME

    monkeypatch.setenv("FINSENT_URL", url)
    monkeypatch.setenv("FINSENT_API_KEY", "")
    cells.results_cache.clear()
    text, scheme = args
    udf = getattr(finsent_udf, BY_NAME[function].xlwings_name)  # the add-in's FINSENT.WHY is xlwings' FINSENT_WHY
    out = udf(text) if scheme is None else udf(text, scheme)
    return [[out]] if isinstance(out, str) else out


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_addin_functions_give_the_xlwings_cells(server, monkeypatch):
    cases = addin_cases()
    out = run_addin_functions(server.url, [[{"fn": f, "args": a} for f, a in cases]])
    assert out["associated"] == ["FINSENT", "FINSENT_SCORE", "FINSENT_PROBS", "FINSENT_DOC", "FINSENT_DOC_SCORE",
                                 "FINSENT.WHY"]
    for (function, args), js in zip(cases, out["phases"][0]["results"]):
        assert js == python_cells(function, args, server.url, monkeypatch), (function, args)
    results = out["phases"][0]["results"]
    from finsent_local.engine.labels import LABELS_3, LABELS_7

    assert results[0][0][0] in LABELS_7 and results[2][0][0] in LABELS_3 and results[4][0][0] in LABELS_7
    assert results[5] == [['#FINSENT! scheme must be "3" or "7"']]
    mixed = results[6]
    assert mixed[1] == ["", ""] and mixed[2] == ["#FINSENT! not text (a number)", "#FINSENT! not text (TRUE/FALSE)"]
    assert mixed[3] == ["#FINSENT! the cell holds an error (#N/A)", "#FINSENT! text too long"]
    assert mixed[4][0].startswith("#FINSENT! ") and mixed[4][1] == results[1][0][0]
    assert results[9][0] == ["negative", "neutral", "positive"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_a_key_with_url_characters_reaches_the_server_whole(trained_gguf, tmp_path):
    """The manifest's page address (#key=..., URL-encoded) is the page's location in the functions'
    runtime: a key with "&" and "%" must come out whole, and the cells get labels, not a 401."""
    from urllib.parse import urlsplit

    from finsent_local.excel.addin_manifest import manifest_xml

    key = 'k&%zz"<#1'
    keyed = RunningServer("--model", str(trained_gguf["f16"]), "--api-key", key,
                          env={"FINSENT_CACHE_DIR": str(tmp_path / "cache")})
    try:
        page = re.search(r'id="Shared.Url" DefaultValue="([^"]+)"', manifest_xml("https://localhost:8443", key))
        fragment = urlsplit(page.group(1).replace("&amp;", "&")).fragment
        out = run_addin_functions(f"{keyed.url}/addin/functions.html#{fragment}",
                                  [[{"fn": "FINSENT", "args": [[["Hooli raises full-year guidance"]], "3"]}]])
    finally:
        keyed.stop()
    from finsent_local.engine.labels import LABELS_3

    assert out["phases"][0]["results"][0][0][0] in LABELS_3, out


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_addin_batches_one_recalculation_into_few_requests(server):
    column = [[f"Globex unit {i} reports revenue up {i % 17}%"] for i in range(300)]
    singles = [{"fn": "FINSENT", "args": [[[f"Initech branch {i} closes"]], "7"]} for i in range(20)]
    recalc = [{"fn": "FINSENT", "args": [column, "7"]}, {"fn": "FINSENT_SCORE", "args": [column, "7"]}, *singles]
    out = run_addin_functions(server.url, [recalc, recalc])
    first, again = out["phases"]
    # 320 distinct texts in one recalculation: 2 requests (256 + 64), not 322; nothing asked twice.
    assert first["requests"] == 2
    assert again["requests"] == 0 and again["results"] == first["results"]
    labels = [row[0] for row in first["results"][0]]
    texts = [row[0] for row in column]
    expected = [r for part in (texts[:256], texts[256:])
                for r in post_json(server.url + "/v1/classify", {"texts": part})["results"]]
    assert labels == [r["label"] for r in expected]  # from the server's result cache: the same answers


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_addin_functions_with_the_server_stopped(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = run_addin_functions(url, [[{"fn": "FINSENT", "args": [[["Profit rose"], [""]], "7"]},
                                     {"fn": "FINSENT_PROBS", "args": [[["Profit rose"]], "3"]}]])
    message = f"#FINSENT! server not running at {url} - start it with: finsent serve"
    assert out["phases"][0]["results"] == [[[message + " --https-port 8443"]]] * 2
    assert python_cells("FINSENT", [[["Profit rose"], [""]], "7"], url, monkeypatch) == [[message]]


# -- HTTPS: certificates, the listener, and the add-in page in a browser that trusts them -----------

def test_finsent_certs_makes_a_name_constrained_authority(tmp_path):
    from cryptography import x509

    env = {"FINSENT_TLS_DIR": str(tmp_path / "tls")}
    code, stdout, stderr = run_finsent("certs", env=env)
    assert code == 0, stderr
    assert "created a local certificate authority" in stdout and "finsent certs --trust" in stdout
    folder = tmp_path / "tls"
    ca = x509.load_pem_x509_certificate((folder / "finsent-local-ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((folder / "localhost.pem").read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical and x509.DNSName("localhost") in constraints.value.permitted_subtrees
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}  # where it listens
    usage = ca.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]  # the CA signs TLS servers, nothing else
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 398  # within Apple's and browsers' limits
    leaf.verify_directly_issued_by(ca)
    for key in ("finsent-local-ca.key", "localhost.key"):
        assert (folder / key).stat().st_mode & 0o077 == 0  # the keys: this user only

    code, stdout, _ = run_finsent("certs", "--renew", env=env)
    renewed = x509.load_pem_x509_certificate((folder / "localhost.pem").read_bytes())
    assert code == 0 and "created" not in stdout and renewed.serial_number != leaf.serial_number
    assert x509.load_pem_x509_certificate((folder / "finsent-local-ca.pem").read_bytes()) == ca  # same trust

    # a new CA (its files deleted and made again): the old localhost certificate is issued anew
    (folder / "finsent-local-ca.pem").unlink()
    code, stdout, _ = run_finsent("certs", env=env)
    new_ca = x509.load_pem_x509_certificate((folder / "finsent-local-ca.pem").read_bytes())
    assert code == 0 and "created a local certificate authority" in stdout and "issued the localhost" in stdout
    x509.load_pem_x509_certificate((folder / "localhost.pem").read_bytes()).verify_directly_issued_by(new_ca)


def test_trust_steps_need_no_admin_rights(tmp_path):
    from finsent_local.server.tls import trust_steps

    ca = tmp_path / "ca.pem"
    windows = trust_steps(ca, "Windows")[0].argv
    assert windows == ["certutil", "-user", "-addstore", "Root", str(ca)]  # the user's store, not the machine's
    mac = trust_steps(ca, "Darwin")[0].argv
    assert mac[:5] == ["security", "add-trusted-cert", "-r", "trustRoot", "-p"] and "login.keychain-db" in mac[-2]
    linux = trust_steps(ca, "Linux")
    assert "nssdb" in linux[0].howto and "update-ca-certificates" in linux[-1].howto


def test_certs_trust_fails_when_nothing_was_trusted(tmp_path):
    """Without certutil (Linux), --trust can only print the steps: exit 1, so a script does not go on as
    if Excel could now load the add-in."""
    code, stdout, stderr = run_finsent("certs", "--trust", env={
        "HOME": str(tmp_path / "home"), "FINSENT_TLS_DIR": str(tmp_path / "tls"), "PATH": "/nonexistent"})
    assert code == 1, stdout + stderr
    assert "to do yourself:" in stdout and "nothing was trusted" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def https_server(trained_gguf, tmp_path_factory):
    tls = tmp_path_factory.mktemp("tls")
    running = RunningServer("--model", str(trained_gguf["q8_0"]), "--https-port", "0",
                            env={"FINSENT_TLS_DIR": str(tls),
                                 "FINSENT_CACHE_DIR": str(tmp_path_factory.mktemp("https-cache"))})
    running.https_url = re.search(r"https:\s+(https://\S+)", running.log()).group(1)
    running.tls = tls
    yield running
    running.stop()


def test_https_listener_serves_the_same_api(https_server):
    context = ssl.create_default_context(cafile=str(https_server.tls / "finsent-local-ca.pem"))
    for host in ("localhost", "127.0.0.1"):
        url = https_server.https_url.replace("localhost", host)
        request = urllib.request.Request(url + "/v1/classify", data=json.dumps({"text": "Profit soared"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            assert json.loads(response.read())["label"]
    with urllib.request.urlopen(https_server.https_url + "/addin/manifest.xml", context=context) as response:
        manifest = response.read().decode()
    assert f"{https_server.https_url}/addin/functions.json" in manifest
    with pytest.raises(urllib.error.HTTPError) as redirect:  # over HTTP: sent to the HTTPS listener
        urllib.request.build_opener(NoRedirect).open(https_server.url + "/addin/manifest.xml")
    assert redirect.value.code == 307
    assert redirect.value.headers["Location"] == https_server.https_url + "/addin/manifest.xml"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(https_server.https_url + "/health", context=ssl.create_default_context())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
@pytest.mark.skipif(CERTUTIL is None, reason="certutil not installed (Debian's libnss3-tools; setup.sh --dev installs it)")
def test_addin_page_over_https_in_chromium(https_server, tmp_path, held_out):
    """The functions' page loaded over HTTPS as Excel loads it, in a Chromium that trusts the project's
    CA the way `finsent certs --trust` sets it up on Linux (the user's NSS database), with the
    custom-functions runtime as a STAND-IN: the real server's labels come back."""
    untrusting = browser.start_chromium(tmp_path / "downloads", env={"HOME": str(tmp_path / "other-home")})
    try:  # the control: a browser that does not trust the CA shows its certificate warning instead
        untrusting.get(https_server.https_url + "/addin/functions.html")
        assert untrusting.title != "FinSent Local: Excel functions"
    finally:
        untrusting.quit()

    home = tmp_path / "home"
    code, stdout, stderr = run_finsent("certs", "--trust", env={"HOME": str(home), "FINSENT_TLS_DIR": str(https_server.tls)})
    assert code == 0 and "trusted: certutil" in stdout, stdout + stderr
    texts = [text for text, _ in held_out[:4]]
    expected = [r["label"] for r in post_json(https_server.url + "/v1/classify", {"texts": texts})["results"]]

    driver = browser.start_chromium(tmp_path / "downloads", env={"HOME": str(home)})
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*appsforoffice.microsoft.com*"]})  # offline here
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__associated = {};  // STAND-IN for Excel's custom-functions runtime
            window.CustomFunctions = { associate: (id, fn) => { window.__associated[id] = fn; } };"""})
        driver.get(https_server.https_url + "/addin/functions.html")
        assert driver.execute_script("return location.protocol") == "https:"
        assert driver.title == "FinSent Local: Excel functions"  # not a certificate warning page
        # the task pane's freeze buttons, wired by freeze.js (Excel's API is not there: the first click
        # on "whole sheet" only asks for confirmation)
        driver.find_element("id", "freeze-sheet").click()
        assert driver.find_element("id", "freeze-message").text.startswith("Replace every FinSent formula on this sheet")
        out = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const f = window.__associated;
            Promise.all([f.FINSENT(arguments[0].map(t => [t]), "7"), f.FINSENT_SCORE([[arguments[0][0]]], "7"),
                         f.FINSENT([[""]], "3")])
              .then(done, e => done({error: String(e)}));""", texts)
        # The web page on the HTTPS port (what Mac users open) offers the add-in's formula first.
        driver.get(https_server.https_url + "/")
        first_use = driver.execute_script("return document.querySelector('.uses dt').textContent")
        assert first_use == "Excel on Mac or the web (Office add-in)"
        assert driver.find_element("id", "formula-office").text == '=LOCAL.FINSENT(A2,"7")'
        manifest_link = driver.find_element("css selector", "#office-hint a")
        assert manifest_link.get_attribute("href") == https_server.https_url + "/addin/manifest.xml"
    finally:
        driver.quit()
    assert [row[0] for row in out[0]] == expected
    assert isinstance(out[1][0][0], float) and out[2] == [[""]]


def test_finsent_excel_addin_writes_the_manifest_and_the_steps(tmp_path):
    from finsent_local.excel.configure import MAC_WEF_FOLDER, install_addin

    out = tmp_path / "manifest.xml"
    code, stdout, stderr = run_finsent("excel", "--addin", "--https-url", "https://localhost:9443", "--manifest", str(out),
                                       env={"FINSENT_API_KEY": ""})
    assert code == 0, stderr
    root = ET.parse(out).getroot()
    assert "https://localhost:9443/addin/functions.json" in ET.tostring(root, encoding="unicode")
    for step in ("finsent serve --https-port 9443", "finsent certs --trust", "Excel for Mac", "Upload My Add-in",
                 "local network", "=LOCAL.FINSENT(A2"):
        assert step in stdout, step
    # The steps in the README's order, with its menu path; a manifest anyone may read (a shared catalog).
    assert stdout.index("1. Trust") < stdout.index("2. Start the server")
    assert "My Add-ins > Developer Add-ins > FinSent Local" in stdout
    assert "My Add-ins > Developer Add-ins > FinSent Local" in (Path(__file__).parents[1] / "README.md").read_text()
    assert out.stat().st_mode & 0o044 == 0o044
    # An existing manifest is kept without --force; a missing folder is not made silently.
    before = out.read_text()
    code, _, stderr = run_finsent("excel", "--addin", "--https-url", "https://localhost:8443", "--manifest", str(out))
    assert code == 1 and "--force" in stderr and out.read_text() == before
    code, _, stderr = run_finsent("excel", "--addin", "--https-url", "https://localhost:8443", "--manifest", str(out),
                                  "--force")
    assert code == 0 and "https://localhost:8443/addin/functions.json" in out.read_text()
    code, _, stderr = run_finsent("excel", "--addin", "--manifest", str(tmp_path / "typo" / "m.xml"))
    assert code == 1 and "does not exist" in stderr and not (tmp_path / "typo").exists()
    code, _, stderr = run_finsent("excel", "--addin", "--https-url", "http://127.0.0.1:8000", "--manifest", str(out),
                                  "--force")
    assert code == 1 and "HTTPS only" in stderr and len(stderr.strip().splitlines()) == 1

    mac = install_addin("https://localhost:8443", "key", tmp_path / "m.xml", home=tmp_path / "mac-home",
                        platform="darwin")
    assert mac.sideloaded == tmp_path / "mac-home" / MAC_WEF_FOLDER / "finsent-local-manifest.xml"
    assert mac.sideloaded.read_text() == (tmp_path / "m.xml").read_text()
    assert "functions.html#key=key" in mac.sideloaded.read_text()


# -- the add-in's "Freeze as values" ---------------------------------------------------------------------
FREEZE_JS = ROOT / "excel" / "addin" / "freeze.js"


def run_addin_freeze(job: dict) -> dict:
    proc = subprocess.run([NODE, str(ROOT / "tests" / "js" / "run_addin_freeze.mjs"), str(FREEZE_JS)],
                          input=json.dumps(job), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_addin_freeze_rewrites_the_finsent_cells_only():
    """freeze.js on a stand-in of Excel's API: the selection's FinSent formulas (a spilled one with its
    whole spill) become their values, other formulas and cells outside the selection stay, a waiting
    cell refuses the whole freeze, and the whole sheet is frozen on request."""
    sheet = {
        "A1": {"value": "Globex files for bankruptcy protection"},
        "B1": {"formula": '=LOCAL.FINSENT(A1,"7")', "value": "strong negative"},
        "C1": {"formula": "=LOCAL.FINSENT_PROBS(A1:A1,\"3\")", "value": "negative"},
        "D1": {"value": "neutral"}, "E1": {"value": "positive"},
        "C2": {"value": 0.9}, "D2": {"value": 0.07}, "E2": {"value": 0.03},
        "F1": {"formula": "=SUM(C2:E2)", "value": 1},
        "B2": {"formula": "=LOCAL.FINSENT_SCORE(A1)", "value": "#BUSY!"},
        "B5": {"formula": "=LOCAL.FINSENT(A1)", "value": "strong negative"},  # outside the selection
    }
    out = run_addin_freeze({"sheet": sheet, "spills": {"C1": "C1:E2"}, "steps": [
        {"scope": "selection", "address": "A1:F2"},
        {"set": {"B2": -0.93}},
        {"scope": "selection", "address": "A1:F2"},
        {"scope": "selection", "address": "F1"},
        {"scope": "sheet"},
    ]})
    first, second, none, whole = out["messages"]
    assert first == "Nothing was frozen: 1 FinSent cell is still waiting for its result (B2). Try again when it has filled in."
    assert second == "Froze 3 FinSent formulas in the selection into values."
    assert none == "No FinSent formulas in the selection."
    assert whole == "Froze 1 FinSent formula on this sheet into values."
    cells = out["sheet"]
    assert cells["B1"] == {"value": "strong negative"} and cells["B2"] == {"value": -0.93}
    assert [cells[a]["value"] for a in ("C1", "D1", "E1", "C2", "D2", "E2")] == ["negative", "neutral", "positive",
                                                                                0.9, 0.07, 0.03]
    assert not any("formula" in cells[a] for a in ("C1", "D1", "E1", "C2"))
    assert cells["F1"] == {"formula": "=SUM(C2:E2)", "value": 1}  # not ours: kept
    assert cells["B5"] == {"value": "strong negative"}  # frozen only by the whole-sheet step


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (setup.sh --dev installs Debian's nodejs)")
def test_addin_and_python_recognise_the_same_formulas():
    from finsent_local.excel.formulas import is_finsent_formula

    formulas = ['=FINSENT(A2,"7")', "=local.finsent_score(A2)", "=LOCAL.FINSENT_PROBS(A2:A9)", "=_xludf.FINSENT_DOC(B3)",
                '=IFERROR(LOCAL.FINSENT(A2),"")', "=_xldudf_LOCAL_FINSENT_DOC_SCORE(B3)", "=SUM(A1:A3)",
                "=MYFINSENT(A2)", "=X.FINSENT(A2)", "FINSENT(A2)", "",
                '=IF(A2="","",_xlfn.WEBSERVICE("http://127.0.0.1:8000/v1/label?scheme=7&text="&_xlfn.ENCODEURL(A2)))',
                '=WEBSERVICE("http://example.com/data")']
    recognised = run_addin_freeze({"sheet": {}, "formulas": formulas})["recognised"]
    assert recognised == [is_finsent_formula(f) for f in formulas]
    assert recognised == [True] * 6 + [False] * 5 + [True, False]
