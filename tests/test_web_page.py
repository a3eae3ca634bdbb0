"""The web page at /, driven in headless Chromium against the real server and the trained model.

What a user does there: paste headlines or pick a file, classify, read the table and the chart, sort,
cancel a long list, download the CSV, open a row to see which words moved its label (by keyboard as by
mouse); with an API key, enter it once. The labels the page shows are
checked against the API's answers for the same texts. The page's own rules (offline assets, a strict
Content-Security-Policy, every text escaped) are checked both in the browser (no console errors: a CSP
violation is one) and through Flask's test client.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import browser
from running_server import RunningServer
from load_mix import post_json
from long_documents import transcript

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))

READY_STATES = {"ready", "needs the API key"}


class Page:
    """The page in one Chromium tab, with the steps a user takes."""

    def __init__(self, driver, url: str):
        self.driver = driver
        self.url = url

    def open(self, expect: str = "ready") -> None:
        self.driver.get(self.url + "/")
        self.wait_for(lambda: self.text("state-status") == expect, f"the page to show server state {expect!r}")

    def wait_for(self, condition, what: str, timeout_s: float = 60) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout_s, poll_frequency=0.05).until(
            lambda _: condition(), message=f"timed out waiting for {what}; message: {self.text('message')!r}")

    def element(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)

    def type_lines(self, lines: list[str]) -> None:
        box = self.element("texts")
        box.clear()
        box.send_keys("\n".join(lines))

    def set_lines(self, lines: list[str]) -> None:
        """Many lines at once (typing thousands of lines key by key would take minutes)."""
        self.driver.execute_script("document.getElementById('texts').value = arguments[0]", "\n".join(lines))

    def choose_scheme(self, scheme: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, f'input[name="scheme"][value="{scheme}"]').click()

    def classify(self, timeout_s: float = 120) -> None:
        self.element("classify").click()
        self.wait_for_run_end(timeout_s)

    def wait_for_run_end(self, timeout_s: float = 120) -> None:
        self.wait_for(lambda: self.driver.execute_script("return document.body.dataset.run") == "done",
                      "the run to end", timeout_s)

    def rows(self) -> list[dict]:
        return self.driver.execute_script("""
            return [...document.querySelectorAll('#results tbody tr:not(.why-row)')].map(tr => ({
              n: Number(tr.cells[0].textContent),
              text: tr.cells[1].textContent,
              label: tr.cells[2].querySelector('.badge')?.textContent ?? null,
              error: tr.cells[2].querySelector('.error')?.textContent ?? null,
              score: tr.cells[3].textContent,
              probs: tr.cells[4].querySelector('.bars')?.getAttribute('aria-label') ?? null,
              elements: [...tr.querySelectorAll('*')].map(e => e.localName),
            }));""")

    def chart_counts(self) -> dict[str, int]:
        values = self.driver.execute_script("""
            return [...document.querySelectorAll('#chart svg g')].map(g => {
              const texts = g.querySelectorAll('text');
              return [texts[0].textContent, texts[1].textContent];
            });""")
        return {label: int(value.split()[0]) for label, value in values}


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def chromium(downloads):
    driver = browser.start_chromium(downloads)
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium, server):
    page = Page(chromium, server.url)
    page.open()
    yield page
    errors = browser.console_errors(chromium)
    assert not errors, f"the page logged errors (a CSP violation, a failed asset or script): {errors}"


def shown_score(score: float) -> str:
    """How the page writes a score: three decimals, signed, zero without a sign."""
    text = f"{score:.3f}"
    return "0.000" if float(text) == 0 else ("+" + text if float(text) > 0 else text)


def api_results(url: str, texts: list[str], scheme: str = "7") -> list[dict]:
    return post_json(url + "/v1/classify", {"texts": texts, "scheme": scheme})["results"]


def test_pasted_headlines_get_the_apis_labels(page, server, held_out, tmp_path_factory):
    texts = [text for text, _ in held_out[::5]][:5]
    expected = api_results(server.url, texts)
    page.type_lines(texts)
    page.classify()

    rows = page.rows()
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert [r["score"] for r in rows] == [shown_score(e["score"]) for e in expected]
    for row, answer in zip(rows, expected):  # every label's probability is shown, in scale order
        shown = dict(part.rsplit(" ", 1) for part in row["probs"].split(", "))
        assert list(shown) == list(answer["probs"])
        top = max(answer["probs"], key=answer["probs"].get)
        assert shown[top] == f"{answer['probs'][top] * 100:.{1 if answer['probs'][top] < 0.1 else 0}f}%"
    counts = page.chart_counts()
    assert sum(counts.values()) == 5
    assert counts == {label: sum(e["label"] == label for e in expected) for label in counts}
    mean = sum(e["score"] for e in expected) / len(expected)
    assert page.text("mean-score") == shown_score(mean)
    assert page.text("progress-text") == "5 of 5 texts"

    # Server state: model file, backend, and the cache hits of this very run (the API call came first).
    assert page.text("state-model").startswith(Path(server_model_file(server)).name)
    assert page.text("state-backend") == "CPU"
    page.wait_for(lambda: page.text("state-cache") not in {"–", "none yet"}, "the cache figure")
    assert re.fullmatch(r"\d+% of \d+", page.text("state-cache"))

    # The Excel formulas to copy name this server.
    assert page.text("formula-webservice") == \
        f'=IF(A2="","",WEBSERVICE("{server.url}/v1/label?scheme=7&text="&ENCODEURL(A2)))'
    assert page.text("formula-addin") == '=FINSENT(A2,"7")'
    assert page.text("formula-office") == '=LOCAL.FINSENT(A2,"7")'  # the add-in's (Mac, web) needs HTTPS:
    assert "finsent serve --https-port 8443" in page.text("office-hint")  # the HTTP page says how

    shot = tmp_path_factory.mktemp("web-page-screenshot") / "page.png"
    browser.full_page_screenshot(page.driver, shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def server_model_file(server) -> str:
    return re.search(r"model:\s+(\S+)", server.log()).group(1)


def test_scheme_3_sorting_and_keyboard(page, server, held_out):
    from selenium.webdriver.common.keys import Keys

    texts = [text for text, _ in held_out[1::4]][:6]
    expected = api_results(server.url, texts, scheme="3")
    page.choose_scheme("3")
    page.type_lines(texts)
    page.element("texts").send_keys(Keys.CONTROL, Keys.ENTER)  # Ctrl+Enter classifies, as in a chat box
    page.wait_for(lambda: page.driver.execute_script("return document.body.dataset.run") == "done", "the run")
    assert [r["label"] for r in page.rows()] == [e["label"] for e in expected]
    assert set(page.chart_counts()) == {"negative", "neutral", "positive"}

    header = page.element("score-header")
    page.element("sort-score").send_keys(Keys.ENTER)  # a real <button>: reachable and pressable by keyboard
    assert header.get_attribute("aria-sort") == "descending"
    scores = [float(r["score"]) for r in page.rows()]
    assert scores == sorted(scores, reverse=True)
    page.element("sort-score").click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert [float(r["score"]) for r in page.rows()] == sorted(scores)
    page.element("sort-score").click()
    assert header.get_attribute("aria-sort") == "none"
    assert [r["text"] for r in page.rows()] == texts

    # Every form control has a label a screen reader announces.
    unlabelled = page.driver.execute_script("""
        return [...document.querySelectorAll('input, select, textarea')]
          .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.id || e.name);""")
    assert unlabelled == []


def test_hostile_headlines_show_as_text(page, server):
    hostile = ['<img src=x onerror="window.__pwned=1;alert(1)">',
               '<script>window.__pwned=2</script>Shares jumped',
               '"><svg onload=alert(3)> profit fell',
               "=HYPERLINK(\"http://example.com\",\"click\")"]
    page.type_lines(hostile)
    page.classify()
    rows = page.rows()
    assert [r["text"] for r in rows] == hostile
    for row in rows:  # the cells hold text nodes and the page's own elements only
        assert not {"img", "script", "svg"} & set(row["elements"]), row["elements"]
    assert page.driver.execute_script("return window.__pwned === undefined")
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.text  # noqa: B018


def test_csv_upload_and_download(page, server, held_out, downloads, tmp_path):
    texts = [text for text, _ in held_out[2::5]][:4]
    texts[1] = texts[1] + ', "quoted"\nand a second line'  # a field with the delimiter, quotes and a newline
    texts.append("=1+1 (a formula-looking headline)")
    source = tmp_path / "news.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "headline", "source"])
        for i, text in enumerate(texts):
            writer.writerow([i, text, "wire"])
        writer.writerow(["", "", ""])  # a blank row: skipped
    expected = api_results(server.url, texts)

    page.element("file").send_keys(str(source))
    page.wait_for(lambda: page.element("file-options").is_displayed(), "the file's column chooser")
    assert page.text("file-summary") == "news.csv: 5 rows; 1 blank row left out."
    assert page.element("column").get_attribute("value") == "1"  # "headline" was recognised
    assert not page.element("texts").is_displayed()
    page.classify()
    assert [r["text"] for r in page.rows()] == texts
    assert [r["label"] for r in page.rows()] == [e["label"] for e in expected]

    page.element("download").click()
    saved = browser.wait_for_download(downloads, "news.labels-7.csv")
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # a BOM (Excel reads UTF-8) and CRLF
    with saved.open(newline="", encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    labels = list(expected[0]["probs"])
    # The file's own columns and rows, then the results (as finsent classify --input writes them).
    assert list(table[0]) == ["id", "headline", "source", "label", "score",
                              *(f"p_{label.replace(' ', '_')}" for label in labels), "error"]
    assert [row["headline"] for row in table] == texts[:-1] + ["'" + texts[-1]]  # formula text kept as text
    assert [(row["id"], row["source"]) for row in table] == [(str(i), "wire") for i in range(len(texts))]
    for row, answer in zip(table, expected):
        assert row["label"] == answer["label"] and row["error"] == ""
        assert float(row["score"]) == pytest.approx(answer["score"], abs=1e-6)
        for label in labels:
            assert float(row[f"p_{label.replace(' ', '_')}"]) == pytest.approx(answer["probs"][label], abs=1e-6)


def test_xlsx_upload_with_sheet_and_column_choice(page, server, held_out, tmp_path):
    from openpyxl import Workbook
    from selenium.webdriver.support.ui import Select

    texts = [text for text, _ in held_out[3::6]][:4]
    book = Workbook()
    book.active.title = "Notes"
    book.active["A1"] = "nothing to see"
    sheet = book.create_sheet("News")
    sheet.append(["Date", "Title", "Body"])
    for text in texts:
        sheet.append(["2026-11-27", "short", text])
    path = tmp_path / "desk.xlsx"
    book.save(path)
    expected = api_results(server.url, texts)

    page.element("file").send_keys(str(path))
    page.wait_for(lambda: page.element("sheet-choice").is_displayed(), "the sheet chooser")
    Select(page.element("sheet")).select_by_visible_text("News")
    page.wait_for(lambda: page.text("file-summary").startswith("desk.xlsx: 4 rows"), "the News sheet")
    Select(page.element("column")).select_by_visible_text("C: Body")
    page.classify()
    assert [r["text"] for r in page.rows()] == texts
    assert [r["label"] for r in page.rows()] == [e["label"] for e in expected]

    page.element("clear-file").click()
    assert page.element("texts").is_displayed() and not page.element("file-options").is_displayed()

    # Files the page cannot read get one line saying why, and the text box stays in use.
    not_a_workbook = tmp_path / "broken.xlsx"
    not_a_workbook.write_bytes(b"PK\x03\x04 this is not a zip")
    old_excel = tmp_path / "legacy.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0")
    for path, why in ((not_a_workbook, "this is not an .xlsx file (no zip directory found)"),
                      (old_excel, "choose a CSV, TSV, TXT or XLSX file")):
        page.element("file").send_keys(str(path))
        page.wait_for(lambda: page.text("message").startswith(f"Cannot read {path.name}: {why}"), f"the {path.name} message")
        assert page.element("texts").is_displayed() and not page.element("file-options").is_displayed()


def test_long_list_shows_progress_and_cancels(page):
    texts = [f"Unit {i} of Globex reported revenue up {i % 41}% and margins {('wider', 'narrower')[i % 2]}"
             for i in range(3000)]
    page.set_lines(texts)
    page.element("classify").click()
    page.wait_for(lambda: page.text("progress-text").startswith("Classifying… ") and
                  int(page.text("progress-text").split()[1].replace(",", "")) >= 32, "the first answers")
    assert page.element("progress").is_displayed()
    page.element("cancel").click()
    page.wait_for_run_end(30)
    done = int(re.search(r"Cancelled after ([\d,]+) of 3,000 texts", page.text("message")).group(1).replace(",", ""))
    assert 32 <= done < 3000
    assert page.element("classify").is_enabled() and not page.element("cancel").is_displayed()
    assert "The table shows 500 of 3,000 rows" in page.text("table-note")
    labelled = sum(1 for r in page.rows() if r["label"])
    assert labelled >= 32 and sum(page.chart_counts().values()) == done  # the chart counts what was answered


def test_document_mode_tints_each_sentence_with_its_label(page, server):
    """A pasted press release in Document mode: its sentences as /v1/documents gives them, tinted in
    place (an emoji before them: the server counts code points, the page UTF-16 units), hostile text
    shown as text, the document's label and the sentences in the table."""
    from selenium.webdriver.common.by import By

    text = ("ACME GROUP INTERIM REPORT \U0001F4C8 Q3\n"
            "Nakatomi Trading raises full-year guidance. <img src=x onerror=alert(1)> Virtucon files for "
            "bankruptcy protection.\n\n- Dunder Mifflin schedules its annual general meeting\n"
            "- Sterling Cooper shares soar 40% after record profit")
    expected = post_json(server.url + "/v1/documents", {"text": text, "scheme": "7"})
    page.driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="document"]').click()
    assert not page.element("drop-zone").is_displayed()
    page.driver.execute_script("document.getElementById('texts').value = arguments[0]", text)
    page.classify()
    marks = page.driver.execute_script("""
        return [...document.querySelectorAll('#document-text mark')].map(m => [m.textContent, m.dataset.label]);""")
    assert marks == [[s["text"], s["label"]] for s in expected["sentences"]]
    assert len(marks) == 5 and marks[0][0].endswith("\U0001F4C8 Q3")
    assert page.text("document-text") == text  # the whole text, in order, nothing lost or doubled
    assert page.driver.find_elements(By.CSS_SELECTOR, "#document-text img") == []
    document = expected["document"]
    assert page.text("document-summary").startswith(f"{document['label']} (mean sentence score ")
    assert [r["text"] for r in page.rows()] == [s["text"] for s in expected["sentences"]]
    assert page.text("mean-score") == shown_score(document["score"])
    # A sentence's "Why" explains that sentence.
    page.driver.find_element(By.CSS_SELECTOR, '[data-key="toggle-2"]').click()
    wait_for_why(page, 2)
    assert page.driver.execute_script("return document.querySelector('#why-2 .why-text').textContent") == \
        expected["sentences"][1]["text"]


def test_a_100000_character_transcript_in_document_mode(page, server):
    """An earnings-call transcript of 2,400 sentences: one request, every sentence tinted in place, the
    whole text shown once, and the table's row cap said."""
    from selenium.webdriver.common.by import By

    text = transcript()
    page.driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="document"]').click()
    page.driver.execute_script("document.getElementById('texts').value = arguments[0]", text)
    page.classify(timeout_s=300)
    assert page.driver.execute_script("return document.querySelectorAll('#document-text mark').length") == 2400
    assert page.text("document-text") == text
    assert "2,400 sentences" in page.text("document-summary")
    assert len(page.rows()) <= 500 and "of 2,400 rows" in page.text("table-note")


def test_phone_width_has_no_sideways_scrolling(chromium, server, held_out):
    chromium.set_window_size(390, 844)
    try:
        page = Page(chromium, server.url)
        page.open()
        page.type_lines([text for text, _ in held_out[:3]])
        page.classify()
        overflow = chromium.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
        # An open "Why" wraps its words within the screen: read without scrolling sideways.
        chromium.find_element("css selector", '[data-key="toggle-1"]').click()
        wait_for_why(page, 1)
        box = chromium.execute_script("""
            const box = document.querySelector('#why-1 .why-text').getBoundingClientRect();
            return [box.left, box.right, document.documentElement.clientWidth,
                    document.documentElement.scrollWidth];""")
        assert box[0] >= 0 and box[1] <= box[2] and box[3] <= box[2], box
        assert page.element("chart").is_displayed() and len(page.rows()) == 3
        # The chart is drawn for this width, not scaled down: its labels keep their 12 px.
        scale = chromium.execute_script("""
            const svg = document.querySelector('#chart svg');
            return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;""")
        assert scale >= 0.99, f"the chart is scaled to {scale:.2f}: its labels are {12 * scale:.1f} px"
        # The probabilities column is reachable: the table scrolls sideways within its own box.
        seen = chromium.execute_script("""
            const cell = document.querySelector('#results tbody tr td:last-child');
            cell.scrollIntoView({block: 'center', inline: 'end'});
            const box = cell.getBoundingClientRect();
            return [box.left, box.right, window.innerWidth];""")
        assert seen[0] >= -1 and seen[1] <= seen[2] + 1, seen
    finally:
        chromium.set_window_size(1280, 1000)


# -- a row's "Why": its words shaded by occlusion weight ------------------------------------------

def api_explain(url: str, texts: list[str], scheme: str = "7") -> list[dict]:
    return post_json(url + "/v1/explain", {"texts": texts, "scheme": scheme})["results"]


def focused(page) -> dict:
    """What has the keyboard focus: its class, text, key and aria-expanded."""
    return page.driver.execute_script("""
        const e = document.activeElement;
        return {cls: e.className, text: e.textContent, key: e.dataset.key ?? null,
                expanded: e.getAttribute('aria-expanded')};""")


def why_words(page, n: int) -> list[dict]:
    """The shaded words in row n's open panel, as drawn: text, data attributes, class and the colour shown."""
    return page.driver.execute_script("""
        const panel = document.getElementById('why-' + arguments[0]);
        return [...panel.querySelectorAll('.why-text .w')].map(w => ({
          text: w.textContent, weight: Number(w.dataset.weight), shade: Number(w.dataset.shade),
          side: w.classList.contains('neg') ? 'neg' : w.classList.contains('pos') ? 'pos' : 'none',
          tabindex: w.tabIndex, title: w.title, background: getComputedStyle(w).backgroundColor}));""", n)


def rgba(css: str) -> tuple[float, ...]:
    parts = [float(x) for x in re.findall(r"[\d.]+", css)]
    return tuple(parts) if len(parts) == 4 else (*parts, 1.0)


def wait_for_why(page, n: int, state: str = "done") -> None:
    page.wait_for(lambda: page.driver.execute_script(
        "return document.getElementById('why-' + arguments[0])?.dataset.state", n) == state, f"row {n}'s why: {state}")


def test_a_row_opens_by_keyboard_to_show_its_words_shaded(page, server, tmp_path_factory):
    """Tab to a row's "Why", Enter opens it: the text with each word shaded by its /v1/explain weight (the
    event word deepest, the company name unshaded), each word reachable by Tab with its numbers shown on
    focus and on hover; Esc closes, Space reopens from what was already asked."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    texts = ["Nakatomi Trading raises full-year guidance", "Virtucon reports a wider quarterly loss"]
    expected = api_explain(server.url, texts)
    page.type_lines(texts)
    page.classify()
    assert [r["label"] for r in page.rows()] == [e["label"] for e in expected]

    keys = ActionChains(page.driver)
    page.driver.execute_script("document.getElementById('sort-score').focus()")
    keys.send_keys(Keys.TAB).perform()  # the next stop after the table's header: row 1's "Why"
    assert focused(page) == {"cls": "why-toggle", "text": "Why", "key": "toggle-1", "expanded": "false"}
    toggle = page.driver.switch_to.active_element
    assert toggle.accessible_name == "Why: the words that moved text 1's label" and toggle.aria_role == "button"
    keys.send_keys(Keys.ENTER).perform()
    wait_for_why(page, 1)
    assert toggle.get_attribute("aria-expanded") == "true" and toggle.get_attribute("aria-controls") == "why-1"

    words = why_words(page, 1)
    answer = expected[0]
    assert [w["text"] for w in words] == [w["text"] for w in answer["words"]]
    assert [w["weight"] for w in words] == [w["weight"] for w in answer["words"]]
    event = {"raises", "full-year", "guidance"}  # the fixture's label is decided by the event phrase
    strongest = max(words, key=lambda w: abs(w["weight"]))
    assert strongest["text"] in event and strongest["side"] == "pos" and strongest["shade"] == 0.7
    company = [w for w in words if w["text"] in {"Nakatomi", "Trading"}]
    assert all(abs(w["weight"]) < abs(strongest["weight"]) / 100 for w in company), words
    assert all(w["side"] == "none" and w["shade"] == 0 for w in company)  # near zero: unshaded
    assert all(w["tabindex"] == 0 for w in words)
    r, g, b, a = rgba(strongest["background"])
    assert g > r and g > b and a > 0.5, strongest["background"]  # drawn green, deep
    assert all(rgba(w["background"])[3] == 0 for w in company)  # drawn with no background at all
    status = page.driver.find_element("css selector", "#why-1 .why-status").text
    top = sorted((w for w in words if w["side"] != "none"), key=lambda w: -abs(w["weight"]))[:3]
    assert status == (f"{answer['label']} (score {shown_score(answer['score'])}). Strongest: "
                      + "; ".join(f"{w['text']} {w['weight']:+.2f}" for w in top) + ".")
    assert "Nakatomi" not in status  # an unshaded word is no reason, even ranked among the top three

    # Tab walks the words in order; each shows its numbers on focus, and has them in its name.
    for word in answer["words"]:
        keys.send_keys(Keys.TAB).perform()
        assert focused(page)["text"] == word["text"]
    page.driver.execute_script("document.querySelector('[data-key=\"toggle-1\"]').focus()")
    for _ in range(1 + [w["text"] for w in answer["words"]].index(strongest["text"])):
        keys.send_keys(Keys.TAB).perform()
    raises = next(w for w in answer["words"] if w["text"] == strongest["text"])
    numbers = (f"weight {raises['weight']:+.3f} (pushed towards positive); p({answer['label']}) "
               f"{raises['label_weight']:+.3f}; without it: {raises['label_without']}")
    assert page.text("why-1-detail") == f"{raises['text']}: {numbers}"
    word = page.driver.switch_to.active_element
    assert word.accessible_name == f"{raises['text']}: {numbers}" and word.aria_role == "term"
    assert strongest["title"] == numbers  # the mouse's tooltip

    # Row 2, opened by mouse: "loss" pushed towards negative, red; hovering a word shows its numbers.
    page.driver.find_element("css selector", '[data-key="toggle-2"]').click()
    wait_for_why(page, 2)
    second = why_words(page, 2)
    loss = max(second, key=lambda w: abs(w["weight"]))
    assert loss["text"] == "loss" and loss["side"] == "neg" and loss["shade"] == 0.7
    r, g, b, a = rgba(loss["background"])
    assert r > g and r > b and a > 0.5, loss["background"]
    company = next(w for w in expected[1]["words"] if w["text"] == "Virtucon")
    shown = next(w for w in second if w["text"] == "Virtucon")
    assert shown["side"] == "none"  # unshaded, and said so: not a "push towards positive" of +0.000
    assert shown["title"] == (f"weight {company['weight']:+.3f} (next to no push); p({expected[1]['label']}) "
                              f"{company['label_weight']:+.3f}; without it: {company['label_without']}")
    ActionChains(page.driver).move_to_element(
        page.driver.find_element("css selector", "#why-2 .w")).perform()
    page.wait_for(lambda: page.text("why-2-detail") == f"Virtucon: {shown['title']}", "the hovered word's numbers")

    shot = tmp_path_factory.mktemp("why-screenshot") / "why.png"
    browser.full_page_screenshot(page.driver, shot)
    print(f"screenshot: {shot}")

    # Esc closes the panel and gives the focus back to its button; Space reopens it, already explained.
    page.driver.execute_script("document.querySelector('#why-1 .w').focus()")
    keys.send_keys(Keys.ESCAPE).perform()
    assert focused(page)["key"] == "toggle-1" and focused(page)["expanded"] == "false"
    assert page.driver.execute_script("return document.getElementById('why-1')") is None
    keys.send_keys(Keys.SPACE).perform()
    assert page.driver.execute_script("return document.getElementById('why-1')?.dataset.state") == "done"

    # Sorting redraws the table: open rows stay open, under their own row.
    page.element("sort-score").click()
    page.element("sort-score").click()  # ascending: row 2 (negative) first
    order = page.driver.execute_script("""
        return [...document.querySelectorAll('#results tbody tr')].map(tr =>
          tr.classList.contains('why-row') ? tr.querySelector('.why').id : tr.cells[0].textContent);""")
    assert order == ["2", "why-2", "1", "why-1"]


def test_why_shows_markup_and_formulas_as_text(page, server):
    """Markup and a formula in a text stay characters in the shaded text (no element is made of them),
    and an emoji before the words does not shift them (the server's offsets count code points)."""
    text = "\U0001F4C9 <b>x</b> =SUM(A1) Virtucon cuts full-year guidance <script>window.__pwned=1</script>"
    expected = api_explain(server.url, [text])[0]
    page.set_lines([text])  # not typed: chromedriver types no character outside the BMP (the emoji)
    page.classify()
    page.driver.find_element("css selector", '[data-key="toggle-1"]').click()
    wait_for_why(page, 1)
    shown = page.driver.execute_script("""
        const p = document.querySelector('#why-1 .why-text');
        return {text: p.textContent, elements: [...p.querySelectorAll('*')].map(e => e.localName)};""")
    assert shown["text"] == text
    assert set(shown["elements"]) == {"span"}  # the page's word spans only: no <b>, no <script>
    assert [w["text"] for w in why_words(page, 1)] == [w["text"] for w in expected["words"]]
    assert [w["text"] for w in expected["words"]][:5] == ["b", "x", "b", "SUM", "A1"]
    assert page.driver.execute_script("return window.__pwned === undefined")


def test_why_over_the_word_limit_shows_the_servers_error(page, server):
    """A text over the explain word limit: the panel says the server's own message, and the row keeps its
    label (classifying it was fine)."""
    import json
    import urllib.error
    import urllib.request

    text = " ".join(f"Globex unit {i} reports revenue up" for i in range(60))  # 360 words, 2,000 characters
    request = urllib.request.Request(server.url + "/v1/explain", data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    error = json.loads(refused.value.read())["error"]
    assert error["code"] == "too_many_words"

    page.type_lines([text])
    page.classify()
    assert page.rows()[0]["label"]
    page.driver.find_element("css selector", '[data-key="toggle-1"]').click()
    wait_for_why(page, 1, "error")
    panel = page.driver.find_element("css selector", "#why-1")
    assert panel.get_attribute("data-code") == "too_many_words"
    assert panel.find_element("css selector", ".why-status").text == f"Not explained: {error['message']}"
    assert panel.find_elements("css selector", ".w") == []
    browser.console_errors(page.driver)  # the browser logs the refused call (413) itself


def test_page_modules_shade_words_by_code_point(page):
    """wordSegments (chart.js) in the real browser: offsets are code points, the shade is relative to the
    text's strongest word (never under the floor), near-zero words stay unshaded, and offsets that do not
    fit the text give null rather than misplaced words."""
    out = page.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/chart.js').then((c) => {
          const w = (text, start, weight, label_weight = 0) => ({text, start, end: start + [...text].length,
                                                                 weight, label_weight});
          const text = '\\u{1F4C9} Acme cuts guidance';  // the emoji: 1 code point, 2 UTF-16 units
          const words = [w('Acme', 2, 0.001), w('cuts', 7, -0.4), w('guidance', 12, 0.2)];
          const brief = (s) => s.word ? [s.text, s.side, Number(s.shade.toFixed(3))] : s.text;
          done({
            segments: c.wordSegments(text, words).map(brief),
            faint: c.wordSegments('a b', [w('a', 0, -0.01), w('b', 2, 0.02)]).map(brief),
            overlap: c.wordSegments('a b c', [w('a b', 0, 0.3), w('b c', 2, 0.1)]).map(brief),
            misplaced: c.wordSegments('Acme cuts', [w('cuts', 4, -0.4)]),
            strongest: c.strongestWords([w('a', 0, 0.1, 0.1), w('b', 2, -0.3), w('c', 4, 0.1, 0.5), w('d', 6, 0)], 3)
              .map((x) => x.text),
          });
        }, (e) => done({error: String(e)}));""")
    assert "error" not in out, out
    assert out["segments"] == ["\U0001F4C9 ", ["Acme", "none", 0], " ", ["cuts", "neg", 0.7], " ",
                               ["guidance", "pos", 0.35]]
    assert out["faint"] == [["a", "neg", 0.14], " ", ["b", "pos", 0.28]]  # under the 0.05 floor: faint
    assert out["overlap"] == [["a b", "pos", 0.7], " c"]  # overlapping pairs: the first keeps its characters
    assert out["misplaced"] is None
    assert out["strongest"] == ["b", "c", "a"]


@pytest.fixture(scope="module")
def keyed_server(trained_gguf, tmp_path_factory):
    running = RunningServer("--model", str(trained_gguf["q8_0"]), "--api-key", "s3cret-key",
                            env={"FINSENT_CACHE_DIR": str(tmp_path_factory.mktemp("keyed-cache"))})
    yield running
    running.stop()


def test_api_key_is_asked_once_per_tab(chromium, keyed_server, held_out):
    page = Page(chromium, keyed_server.url)
    page.open(expect="needs the API key")
    assert page.element("key-panel").is_displayed()
    assert "&key=YOUR_KEY&text=" in page.text("formula-webservice")  # the formula needs the key; not shown
    page.element("api-key").send_keys("wrong-key\n")
    page.wait_for(lambda: "did not accept this key (invalid_api_key)" in page.text("key-message"), "the rejection")
    assert page.element("key-panel").is_displayed()

    page.element("api-key").send_keys("s3cret-key\n")
    page.wait_for(lambda: page.text("state-status") == "ready", "the key to be accepted")
    assert not page.element("key-panel").is_displayed()
    page.type_lines([text for text, _ in held_out[:2]])
    page.classify()
    assert all(r["label"] for r in page.rows()) and len(page.rows()) == 2
    chromium.find_element("css selector", '[data-key="toggle-1"]').click()  # /v1/explain gets the key too
    wait_for_why(page, 1)
    assert len(why_words(page, 1)) >= 2
    storage = chromium.execute_script("return [localStorage.length, sessionStorage.getItem('finsent-api-key')]")
    assert storage == [0, "s3cret-key"]  # this tab only: never in localStorage, cookies or the URL
    assert chromium.get_cookies() == []

    page.open()  # a reload keeps it (same tab) ...
    original = chromium.current_window_handle
    chromium.switch_to.new_window("tab")  # ... a new tab asks again
    try:
        Page(chromium, keyed_server.url).open(expect="needs the API key")
    finally:
        chromium.close()
        chromium.switch_to.window(original)
    errors = browser.console_errors(chromium)
    assert all("401" in e for e in errors), errors  # the browser logs the refused calls; nothing else


def test_server_gone_is_a_readable_message(chromium, trained_gguf, tmp_path):
    running = RunningServer("--model", str(trained_gguf["q8_0"]), "--no-cache")
    page = Page(chromium, running.url)
    try:
        page.open()
    finally:
        running.stop()
    page.type_lines(["Profit rose"])
    page.classify(timeout_s=30)
    assert "The server did not answer. Is `finsent serve` still running?" in page.text("message")
    browser.console_errors(chromium)  # the refused connection is logged by the browser itself


# -- the page's rules, through Flask's test client ------------------------------------------------

def test_page_and_assets_are_offline_and_locked_down(client):
    from finsent_local.server.web import ASSETS

    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and "unsafe" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    for name in ASSETS:
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200 and response.mimetype == types[Path(name).suffix], name
        assert response.headers["Content-Security-Policy"] == page.headers["Content-Security-Policy"]
        body = response.get_data(as_text=True)
        # Offline: nothing is loaded from another host; every text goes in as text, never as HTML.
        assert not re.search(r"(src|href|url|import)\s*[=(]?\s*[\"']?(https?:)?//", body), name
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", body), name
        again = client.get(f"/ui/{name}", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
    total = sum(len(client.get(f"/ui/{name}").data) for name in ASSETS)
    assert total < 100_000, f"the page's files weigh {total} bytes"
    missing = client.get("/ui/../pyproject.toml")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert client.get("/ui/web.py").status_code == 404


def test_page_is_open_but_the_api_keeps_its_key_and_host_rules(loaded_runtime):
    from finsent_local.server import ServerConfig, create_app

    keyed = create_app(loaded_runtime, ServerConfig(api_key="k")).test_client()
    assert keyed.get("/").status_code == 200 and keyed.get("/ui/app.js").status_code == 200
    assert keyed.get("/v1/status").status_code == 401
    status = keyed.get("/v1/status", headers={"Authorization": "Bearer k"}).json
    assert status["status"] == "ok" and status["backend"] == "CPU" and status["model_file"].endswith(".gguf")
    assert status["schemes"]["7"]["labels"][0] == "strong negative" and status["limits"]["max_texts_per_request"] == 256
    assert set(status["cache"]) == {"enabled", "hits", "misses", "hit_rate"}
    assert status["extra_cpu_buffers"] is False  # an F16 model: nothing for AMX or repacking, on any CPU

    keyless = create_app(loaded_runtime).test_client()
    foreign = keyless.get("/", headers={"Host": "attacker.example"})
    assert foreign.status_code == 403 and foreign.json["error"]["code"] == "host_not_allowed"


def test_page_modules_parse_files_and_plan_requests(page):
    """The page's own modules, imported into the real browser: CSV/TSV parsing, encodings, the CSV
    download's quoting and formula guard, and how texts are split into requests within the server's limits."""
    out = page.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([import('/ui/tables.js'), import('/ui/api.js')]).then(([t, api]) => {
          const bytes = (s) => new Uint8Array([...s].map(c => c.charCodeAt(0)));
          done({
            crlf: t.parseDelimited('a,b\\r\\n"x, ""y""\\r\\nz",2\\r\\n,\\r\\n', ','),
            noFinalNewline: t.parseDelimited('h\\nlast', ','),
            semicolon: t.sniffDelimiter('titre;date\\n"a;b";1', 'export.csv'),
            commaInQuotes: t.sniffDelimiter('"a;b;c",x\\n', 'x.csv'),
            tsv: t.sniffDelimiter('a,b', 'x.tsv'),
            table: t.tableFromRows([['', ''], ['id', ''], ['1', 'Profit rose'], ['', '  ']]),
            lines: t.tableFromLines('Profit rose\\r\\n  \\nSales fell\\n'),
            guess: t.guessTextColumn({columns: ['id', 'Headline'], rows: [['1', 'x']]}),
            guessLongest: t.guessTextColumn({columns: ['a', 'b'], rows: [['1', 'long text here']]}),
            utf8: t.decodeText(new TextEncoder().encode('\\ufeffcaf\\u00e9')),
            cp1252: t.decodeText(bytes('caf\\xe9 \\x80')),
            csv: t.toCsv([['=1+1', '-5%', '-x', '@SUM(A1)', '+3', 'a "q", b', ' pad', 2.5]]),
            plan: api.planChunks(['a', 'b'.repeat(11), 'c', 'd', 'e'],
                                 {max_texts_per_request: 256, max_text_chars: 10, max_body_bytes: 16}, 2),
            letters: [0, 25, 26, 701, 702].map(t.columnLetters),
          });
        }, (e) => done({error: String(e)}));""")
    assert "error" not in out, out
    assert out["crlf"] == [["a", "b"], ['x, "y"\r\nz', "2"], ["", ""]]
    assert out["noFinalNewline"] == [["h"], ["last"]]
    assert (out["semicolon"], out["commaInQuotes"], out["tsv"]) == (";", ",", "\t")
    assert out["table"] == {"columns": ["id", "Column B"], "rows": [["1", "Profit rose"]], "blankRows": 2}
    assert out["lines"] == {"columns": ["text"], "rows": [["Profit rose"], ["Sales fell"]], "blankRows": 1}
    assert (out["guess"], out["guessLongest"]) == (1, 1)
    assert out["utf8"] == {"text": "café", "encoding": "UTF-8"}
    assert out["cp1252"] == {"text": "café €", "encoding": "Windows-1252"}
    assert out["csv"] == "\ufeff'=1+1,-5%,'-x,'@SUM(A1),+3,\"a \"\"q\"\", b\",\" pad\",2.5\r\n"
    # 2 texts per request here; the 11-character text is over the limit: not sent, an error of its own.
    assert out["plan"] == {"chunks": [[0, 2], [3, 4]], "tooLong": [1]}
    assert out["letters"] == ["A", "Z", "AA", "ZZ", "AAA"]
