"""The documentation: the site builds (`mkdocs build --strict`: a broken link, anchor or missing page fails),
opens in headless Chromium offline (navigation, search, no request to another host), every `finsent ...`
command line in the docs and README is checked against the CLI's own click definitions, the examples
marked runnable are run on the tests' model with their shown output compared, and every command's help
names the page that explains it.

Markers, in the Markdown (HTML comments: invisible on the site and on GitHub):

    <!-- runnable -->        before a ```bash or ```python block: the tests run it
    <!-- output -->          before the block that follows: what it prints (stdout and stderr), compared
                             line by line; numbers within 0.02 (scores differ in their last digits between
                             CPUs and batchings), `...` stands for any text
"""

from __future__ import annotations

import http.server
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import browser
from finsent_local.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# -- the site ---------------------------------------------------------------------------------------------

def build_site(out: Path) -> subprocess.CompletedProcess:
    # mkdocs-material is in the test extra (`bash setup.sh --dev`): missing, this fails rather than skips.
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    proc = build_site(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def nav_pages() -> list[str]:
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(items):
        for item in items:
            for value in item.values():
                yield from (walk(value) if isinstance(value, list) else [value])
    return list(walk(config["nav"]))


def test_site_builds_strict_with_every_page_and_nothing_from_another_host(site):
    pages = nav_pages()
    assert sorted(pages) == sorted(p.name for p in DOCS.glob("*.md")), "every page in the navigation, once"
    for page in pages:
        assert (site / page.replace(".md", ".html")).is_file(), page
    # bench/RESULTS.md stays where it is and is included whole: its last heading is on the site.
    last_heading = [line for line in (ROOT / "bench" / "RESULTS.md").read_text().splitlines()
                    if line.startswith("## ")][-1][3:]
    assert last_heading.split("`")[0] in (site / "results.html").read_text()
    assert (site / "notebook.ipynb").is_file() and (site / "web-page.png").is_file()
    # Nothing loaded from another host: no web fonts, no scripts, styles, images or frames by URL.
    loads = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert not loads.search(text), f"{html.name} loads from another host: {loads.search(text).group(0)}"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html.name
    for css in site.rglob("*.css"):
        assert not re.search(r"@import\s+(url\()?[\"']?https?:", css.read_text()), css.name


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """What the CI build is for: a link to a page that does not exist stops it (on a copy of the docs)."""
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "RESULTS.md", copy / "bench" / "RESULTS.md")
    page = copy / "docs" / "freeze.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "out")],
                          cwd=copy, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stdout + proc.stderr


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def docs_browser(tmp_path_factory):
    why = browser.missing()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser.CHROMIUM
    for flag in browser.CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    # The performance log holds the DevTools Network events: every request the pages make.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(browser.CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_until(condition, what: str, timeout_s: float = 20):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_site_in_the_browser_navigates_searches_and_stays_on_this_host(docs_browser, site_url):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = docs_browser
    driver.get(site_url + "/index.html")
    assert driver.find_element(By.TAG_NAME, "h1").text == "FinSent Local"
    # Navigation: the side bar's link to the Excel page opens it.
    link = wait_until(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, "nav.md-nav a.md-nav__link")
                               if a.get_attribute("href").endswith("/excel.html") and a.is_displayed()],
                      "the navigation's Excel link")[0]
    link.click()
    wait_until(lambda: driver.current_url.endswith("/excel.html"), "the Excel page")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Excel"
    # Search: "freeze" finds the page about freezing (the index is built by mkdocs, searched in the page).
    field = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    driver.execute_script("arguments[0].focus()", field)
    field.send_keys("freeze")
    # The list is drawn again as each letter's results come in: read it in one script call (no element
    # of an earlier drawing held), and open the hit found afresh, again if it was redrawn meanwhile.
    def result_links() -> list[str]:
        return driver.execute_script(
            "return Array.from(document.querySelectorAll('.md-search-result__list a'), a => a.href)")

    results = wait_until(lambda: (lambda hrefs: hrefs if any("/freeze.html" in h for h in hrefs) else None)(
        result_links()), "search results for 'freeze' that list the freeze page")
    assert any("/freeze.html" in href for href in results), results

    def open_hit() -> bool:
        try:
            hit = [a for a in driver.find_elements(By.CSS_SELECTOR, ".md-search-result__list a")
                   if "/freeze.html" in (a.get_attribute("href") or "")][0]
            hit.send_keys(Keys.ENTER) if not hit.is_displayed() else hit.click()
            return True
        except (StaleElementReferenceException, IndexError):
            return "/freeze.html" in driver.current_url
    wait_until(open_hit, "the freeze page's search result, clicked")
    wait_until(lambda: "/freeze.html" in driver.current_url, "the freeze page from the search result")
    assert "freeze" in driver.find_element(By.TAG_NAME, "h1").text.lower()
    # Every request of the visit went to this server (no CDN, no fonts, no analytics).
    urls = requested_urls(driver)
    assert any(url.endswith("/excel.html") for url in urls), "the performance log saw the visit"
    foreign = [u for u in urls if not u.startswith(site_url + "/") and not u.startswith(("data:", "blob:"))]
    assert not foreign, foreign
    errors = [e for e in browser.console_errors(driver) if "favicon" not in e]
    assert not errors, errors


# -- every `finsent ...` command in the docs, against the click definitions -----------------------------------

COMMAND_START = re.compile(r"(?:^|(?<=[\s;|&(=`]))(?:[^\s;|&(`'\"]*[/\\])?finsent(?=\s|$)")
FENCE = re.compile(r"^(\s*)```([\w-]*)\s*$")
NOT_COMMANDS = {"python", "json", "csv", "xml", "toml", "yaml"}


@dataclass
class Snippet:
    where: str  # file:line
    text: str


def command_snippets(path: Path, text: str | None = None) -> list[Snippet]:
    """Every place a `finsent` command line starts: in fenced blocks (shell, console, plain) and in inline code."""
    text = path.read_text() if text is None else text
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            lang = fence.group(2).lower()
            start, i = i, i + 1
            block = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append((i + 1, lines[i]))
                i += 1
            if lang not in NOT_COMMANDS:
                joined, first = "", None
                for number, line in block:  # backslash-continued lines are one command
                    first = first or number
                    if line.rstrip().endswith("\\") and not line.rstrip().endswith("\\\\"):
                        joined += line.rstrip()[:-1] + " "
                        continue
                    joined += line
                    joined = without_comment(joined)
                    for match in COMMAND_START.finditer(joined):
                        found.append(Snippet(f"{path.name}:{first}", joined[match.start():]))
                    joined, first = "", None
            i += 1
            continue
        for span in re.findall(r"`([^`]+)`", lines[i]):
            match = COMMAND_START.search(span.strip())
            if match:
                found.append(Snippet(f"{path.name}:{i + 1}", span.strip()[match.start():]))
        i += 1
    return found


def without_comment(line: str) -> str:
    """A shell line without its `# comment` (a # at a word's start, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def is_placeholder(value: str) -> bool:
    return ("|" in value or "..." in value or "$" in value or value.isupper()
            or value.startswith("<") or value.startswith("{"))


def find_option(command: click.Command, name: str) -> click.Parameter | None:
    if name in ("-h", "--help"):
        return click.Option(["--help"], is_flag=True)
    for param in command.params:
        if isinstance(param, click.Option) and (name in param.opts or name in param.secondary_opts):
            return param
    return None


def command_problems(line: str) -> list[str]:
    """What is wrong with one `finsent ...` command line, by the CLI's own click definitions."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as e:  # an unclosed quote: the rest of the line is a value anyway
        tokens = line.split()
        if not tokens:
            return [f"cannot read: {e}"]
    tokens = tokens[1:]  # the program itself
    for stop, token in enumerate(tokens):  # the command ends at a pipe, ;, &&, a redirection, a subshell's end
        if token and set(token) <= set(";&|<>()"):
            tokens = tokens[:stop]
            break
    command: click.Command = cli
    path = ["finsent"]
    arguments = 0
    problems = []
    i = 0
    while i < len(tokens):
        token = tokens[i].strip("[]")
        i += 1
        if not token or token in ("...", "…"):
            continue
        if token.startswith("-") and len(token) > 1 and not re.fullmatch(r"-[\d.]+", token):
            name, has_value, value = token.partition("=")
            option = find_option(command, name)
            if option is None:
                problems.append(f"{' '.join(path)}: no such option {name}")
                break  # whether it takes a value is unknown: the rest of the line cannot be read
            if option.is_flag or option.count:
                continue
            if not has_value:
                if i >= len(tokens):
                    continue  # prose naming the option (`finsent serve --https-port`)
                value = tokens[i].strip("[]")
                i += 1
            if isinstance(option.type, click.Choice) and not is_placeholder(value):
                if value not in option.type.choices:
                    problems.append(f"{' '.join(path)}: {name} {value!r} is not one of {list(option.type.choices)}")
            continue
        if isinstance(command, click.Group) and token in command.commands:
            command = command.commands[token]
            path.append(token)
            arguments = 0
            continue
        arguments_allowed = sum(math.inf if p.nargs == -1 else p.nargs for p in command.params
                                if isinstance(p, click.Argument))
        if isinstance(command, click.Group) and not arguments_allowed:
            problems.append(f"{' '.join(path)}: no such command {token!r} (it has: {', '.join(command.commands)})")
            break
        arguments += 1
        if arguments > arguments_allowed:
            problems.append(f"{' '.join(path)}: unexpected argument {token!r}")
            break
    if isinstance(command, click.Group) and not command.invoke_without_command and command is not cli:
        problems.append(f"{' '.join(path)}: needs a command")
    return problems


def test_the_checker_reports_a_wrong_option_a_wrong_command_and_a_wrong_choice():
    """The check itself, on lines that are wrong on purpose (and their right forms)."""
    assert command_problems("finsent serve --prot 8000") == ["finsent serve: no such option --prot"]
    assert command_problems("finsent serve --port 8000") == []
    assert command_problems(".venv/bin/finsent srve")[0].startswith("finsent: no such command 'srve'")
    assert command_problems("finsent excel frezee book.xlsx")[0].startswith("finsent excel: no such command")
    assert command_problems("finsent excel freeze book.xlsx --output frozen.xlsx") == []
    assert command_problems("finsent serve --gpu maybe") == [
        "finsent serve: --gpu 'maybe' is not one of ['auto', 'on', 'off']"]
    assert command_problems("finsent serve --gpu auto|on|off") == []  # a placeholder, as prose writes it
    assert command_problems("finsent convert a b") == ["finsent convert: unexpected argument 'b'"]
    # ... and the same wrong option found in a page: a shell block and inline code, lines joined by "\".
    page = ("Start it:\n\n```bash\n.venv/bin/finsent serve \\\n    --prot 8000   # the port\n```\n\n"
            "or `finsent classify --sheme 3 \"Profit doubled\"`.\n")
    snippets = command_snippets(Path("page.md"), page)
    assert [(s.where, command_problems(s.text)) for s in snippets] == [
        ("page.md:4", ["finsent serve: no such option --prot"]),
        ("page.md:8", ["finsent classify: no such option --sheme"])]


def test_every_finsent_command_in_the_docs_exists_with_its_options():
    snippets = [s for path in doc_files() for s in command_snippets(path)]
    assert len(snippets) >= 60, f"only {len(snippets)} command lines found: the extraction is broken"
    problems = [f"{s.where}: {p}   [{s.text.strip()[:100]}]" for s in snippets for p in command_problems(s.text)]
    assert not problems, "\n".join(problems)
    # ... and every command the CLI has is shown somewhere.
    shown = " ".join(re.sub(r"\s+", " ", s.text) for s in snippets)
    for path in command_paths():
        assert re.search(rf"\bfinsent {re.escape(path)}(\s|$)", shown), f"`finsent {path}` is in no page"


# -- help texts point to the pages ----------------------------------------------------------------------------

def command_paths(group: click.Group = cli, prefix: str = "") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        paths.append(prefix + name)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, prefix + name + " "))
    return paths


@pytest.mark.parametrize("path", ["", *command_paths()])
def test_help_names_the_page_that_explains_it(path):
    result = CliRunner().invoke(cli, [*path.split(), "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    pages = re.findall(r"Docs: (docs/[\w-]+\.md)", result.output)
    assert pages, f"`finsent {path} --help` names no docs page:\n{result.output}"
    page = ROOT / pages[0]
    assert page.is_file(), pages[0]
    if path:
        assert re.search(rf"finsent {re.escape(path)}\b", page.read_text()), f"{pages[0]} never shows `finsent {path}`"


# -- the README: the front door ------------------------------------------------------------------------------

def test_readme_is_the_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    # The two quick-start commands: the first sets up and serves, the second is what .ci/run runs.
    assert "bash setup.sh && .venv/bin/finsent serve" in text
    assert "bash setup.sh --dev && .venv/bin/python -m pytest" in text
    assert ".venv/bin/python -m pytest\n" in (ROOT / ".ci" / "run").read_text()
    # Every link into the repository resolves, and every docs page is reachable from it.
    targets = re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", text)
    for target in targets:
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    linked = {Path(t).name for t in targets if t.startswith("docs/")}
    if "bench/RESULTS.md" in targets:
        linked.add("results.md")  # the page that includes it
    missing = sorted(set(p.name for p in DOCS.glob("*.md")) - linked)
    assert not missing, f"README links to no docs page for: {missing}"


# -- runnable examples -------------------------------------------------------------------------------------------

@dataclass
class Example:
    where: str
    lang: str
    code: str
    output: str | None


def runnable_examples(path: Path, text: str | None = None) -> list[Example]:
    lines = (text if text is not None else path.read_text()).splitlines()
    examples: list[Example] = []

    def block_after(i: int) -> tuple[int, str, str]:
        while i < len(lines) and not FENCE.match(lines[i]):
            assert not lines[i].strip() or lines[i].strip().startswith("<!--"), \
                f"{path.name}:{i + 1}: a marker must come right before its code block"
            i += 1
        lang = FENCE.match(lines[i]).group(2)
        end = i + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        return end, lang, "\n".join(lines[i + 1:end]) + "\n"

    i = 0
    while i < len(lines):
        if lines[i].strip() == "<!-- runnable -->":
            end, lang, code = block_after(i + 1)
            output = None
            j = end + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].strip() == "<!-- output -->":
                end, _, output = block_after(j + 1)
            examples.append(Example(f"{path.name}:{i + 1}", lang, code, output))
            i = end
        i += 1
    return examples


DECIMAL = r"[+-]?\d+\.\d+"
PIECES = re.compile(rf"(\.\.\.|(?<![\w.]){DECIMAL}(?![\w.]))")


def output_matches(shown: str, printed: str) -> bool:
    """Line by line; `...` in a shown line stands for any text; decimals agree within 0.02."""
    shown_lines = [line.rstrip() for line in shown.strip("\n").splitlines()]
    printed_lines = [line.rstrip() for line in printed.strip("\n").splitlines()]
    if len(shown_lines) != len(printed_lines):
        return False
    for want, got in zip(shown_lines, printed_lines):
        pattern, numbers = "", []
        for piece in PIECES.split(want):
            if piece == "...":
                pattern += ".*?"
            elif re.fullmatch(DECIMAL, piece):
                pattern += f"({DECIMAL})"
                numbers.append(float(piece))
            else:
                pattern += re.escape(piece)
        match = re.fullmatch(pattern, got)
        if not match or any(abs(float(g) - w) > 0.02 for g, w in zip(match.groups(), numbers)):
            return False
    return True


def test_output_comparison_catches_a_wrong_label_and_keeps_near_numbers():
    shown = "positive\t+0.996\tNet profit soared\nWrote ...: 2 rows"
    assert output_matches(shown, "positive\t+0.991\tNet profit soared\nWrote news.scored.csv: 2 rows")
    assert not output_matches(shown, "negative\t+0.996\tNet profit soared\nWrote news.scored.csv: 2 rows")
    assert not output_matches(shown, "positive\t-0.400\tNet profit soared\nWrote news.scored.csv: 2 rows")
    assert not output_matches(shown, "positive\t+0.996\tNet profit soared")
    page = "<!-- runnable -->\n```bash\necho hi\n```\n\n<!-- output -->\n```text\nhi\n```\n"
    assert runnable_examples(Path("p.md"), page) == [Example("p.md:1", "bash", "echo hi\n", "hi\n")]


def all_examples() -> list[Example]:
    return [e for path in doc_files() for e in runnable_examples(path)]


def test_runnable_examples_are_few_and_cheap():
    examples = all_examples()
    assert 1 <= len(examples) <= 6, [e.where for e in examples]
    assert all(e.lang in ("bash", "python") for e in examples), [(e.where, e.lang) for e in examples]
    assert any(e.output for e in examples)


@pytest.mark.parametrize("example", all_examples(), ids=lambda e: e.where)
def test_runnable_example(example, trained_gguf, tmp_path):
    """Run as a reader would, in a fresh folder with this checkout's .venv, on the tests' trained model."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, "FINSENT_MODEL": str(trained_gguf["q8_0"]), "FINSENT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    if example.lang == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", example.code]
    else:
        argv = [str(ROOT / ".venv" / "bin" / "python"), "-c", example.code]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"{example.where} failed:\n{proc.stdout}"
    if example.output is not None:
        assert output_matches(example.output, proc.stdout), \
            f"{example.where} printed:\n{proc.stdout}\nthe docs show:\n{example.output}"
