// The page: texts in (text box or a file's column), /v1/classify in chunks (cancellable, progress
// shown), results out (table, chart, CSV). Every text from a user or a file is put into the page with
// textContent or as an attribute value, never as HTML. A row's "Why" opens its words shaded by how much
// each moved the label (/v1/explain, asked when the row is first opened).

import {
  ApiError, apiKey, classify, classifyDocument, explain, getHealth, getStatus, planChunks, setApiKey,
} from "./api.js";
import { drawDistribution, polarityClass, strongestWords, wordSegments } from "./chart.js";
import {
  columnLetters, decodeText, guessTextColumn, linesOf, parseDelimited, sniffDelimiter, tableFromLines, tableFromRows,
  toCsv,
} from "./tables.js";
import { openWorkbook } from "./xlsx.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_LIMITS = { max_texts_per_request: 256, max_text_chars: 32767, max_body_bytes: 4 * 1024 * 1024 };
const TABLE_ROWS = 500; // rows drawn in the table; the chart and the download cover every row
const PARALLEL_REQUESTS = 2; // the next chunk waits at the server while one is computed: no idle gap

const state = { status: null, file: null, run: null, sort: "none", renderTimer: null };

// -- server state and the API key ---------------------------------------------------------------

function showStatus(status) {
  state.status = status;
  const states = { ok: "ready", loading: "loading the model…", error: "the model failed to load" };
  $("state-status").textContent = states[status.status] ?? status.status;
  const size = status.model_bytes ? ` (${Math.round(status.model_bytes / 1e6)} MB)` : "";
  $("state-model").textContent = `${status.model_file}${size}`;
  $("state-backend").textContent = status.backend;
  const cache = status.cache;
  $("state-cache").textContent = !cache.enabled ? "cache off"
    : cache.hit_rate === null ? "none yet"
    : `${Math.round(cache.hit_rate * 100)}% of ${cache.hits + cache.misses}`;
  $("version").textContent = `FinSent Local ${status.version}.`;
  if (status.status === "error") showMessage(`The model could not be loaded: ${status.error}`);
}

function showWebserviceFormula(keyed) {
  // With a key, WEBSERVICE must send it in the URL (formulas cannot send headers); the key itself is not
  // shown. The IF keeps blank rows blank: spreadsheets turn an empty answer into an error.
  const key = keyed ? "&key=YOUR_KEY" : "";
  $("formula-webservice").textContent =
    `=IF(A2="","",WEBSERVICE("${window.location.origin}/v1/label?scheme=7${key}&text="&ENCODEURL(A2)))`;
}

function showOfficeFormula() {
  // The Office add-in (Excel on Mac and the web, where neither xlwings nor WEBSERVICE exists) loads only
  // over HTTPS: on the HTTPS page it comes first, with its manifest; on the HTTP page, how to get there.
  const hint = $("office-hint");
  if (window.location.protocol === "https:") {
    const list = $("office-term").parentElement;
    list.prepend($("office-term"), $("office-use"));
    const link = document.createElement("a");
    link.href = "/addin/manifest.xml";
    link.textContent = "add-in manifest";
    hint.replaceChildren("(", link, "; steps: finsent excel --addin)");
  } else {
    hint.textContent = "(needs HTTPS: finsent serve --https-port 8443, then open this page at its https:// address)";
  }
}

function showKeyPanel(message) {
  showWebserviceFormula(true);
  $("key-panel").hidden = false;
  $("key-message").textContent = message ?? "";
  $("state-status").textContent = "needs the API key";
  $("api-key").focus();
}

const rejectedKeyMessage = (error) =>
  `The server did not accept this key (${error.code}). Use the key given to finsent serve --api-key or FINSENT_API_KEY.`;

async function refreshStatus() {
  const health = await getHealth().catch(() => null); // open route: shows something before the key
  if (health?.model) $("state-model").textContent = health.model;
  if (health?.backend) $("state-backend").textContent = health.backend;
  try {
    const status = await getStatus();
    $("key-panel").hidden = true;
    showStatus(status);
    if (status.status === "loading") setTimeout(refreshStatus, 2000);
  } catch (error) {
    if (error.status === 401) showKeyPanel(apiKey() ? rejectedKeyMessage(error) : null);
    else $("state-status").textContent = error.message;
  }
}

// -- input: the text box or a file ---------------------------------------------------------------

function showMessage(text) {
  $("message").textContent = text;
}

const READABLE_FILES = /\.(csv|tsv|tab|txt|xlsx)$/i;

async function loadFile(file) {
  showMessage("");
  if (!READABLE_FILES.test(file.name)) {
    throw new Error("choose a CSV, TSV, TXT or XLSX file (save .xls or .ods workbooks as .xlsx or CSV first)");
  }
  const buffer = await file.arrayBuffer();
  let workbook = null;
  let table;
  if (/\.xlsx$/i.test(file.name)) {
    workbook = await openWorkbook(buffer);
    table = tableFromRows(await workbook.readSheet(workbook.sheets[0]));
  } else {
    const { text, encoding } = decodeText(buffer);
    table = /\.txt$/i.test(file.name)
      ? { ...tableFromLines(text), encoding }
      : { ...tableFromRows(parseDelimited(text, sniffDelimiter(text, file.name))), encoding };
  }
  state.file = { name: file.name, workbook, table };
  showFileOptions();
}

function showFileOptions() {
  const { name, workbook, table } = state.file;
  const sheetChoice = $("sheet-choice");
  sheetChoice.hidden = !workbook || workbook.sheets.length < 2;
  if (workbook && $("sheet").options.length !== workbook.sheets.length) {
    $("sheet").replaceChildren(...workbook.sheets.map((sheet, i) => new Option(sheet.name, String(i))));
  }
  const column = $("column");
  column.replaceChildren(...table.columns.map((c, i) => new Option(`${columnLetters(i)}: ${c}`, String(i))));
  column.value = String(guessTextColumn(table));
  const encoding = table.encoding && table.encoding !== "UTF-8" ? `, read as ${table.encoding}` : "";
  const blank = table.blankRows ? `; ${plural(table.blankRows, "blank row")} left out` : "";
  $("file-summary").textContent = `${name}: ${plural(table.rows.length, "row")}${blank}${encoding}.`;
  $("file-options").hidden = false;
  $("text-input").hidden = true;
}

const plural = (count, noun) => `${count.toLocaleString()} ${noun}${count === 1 ? "" : "s"}`;

function clearFile() {
  state.file = null;
  $("file").value = "";
  $("sheet").replaceChildren();
  $("file-options").hidden = true;
  $("text-input").hidden = false;
  $("texts").focus();
}

async function useFile(file) {
  try {
    await loadFile(file);
  } catch (error) {
    clearFile();
    showMessage(`Cannot read ${file.name}: ${error.message}`);
  }
}

function collectTexts() {
  if (state.file) {
    const column = Number($("column").value);
    return state.file.table.rows.map((row) => String(row[column] ?? ""));
  }
  return linesOf($("texts").value);
}

// -- a run: chunks through /v1/classify ----------------------------------------------------------

const selectedScheme = () => document.querySelector('input[name="scheme"]:checked').value;

function labelSet(scheme, firstAnswer) {
  const known = state.status?.schemes?.[scheme];
  if (known) return known;
  const labels = firstAnswer.labels; // the server's order is the scale's order
  return { labels, values: labels.map((_, i) => (labels.length > 1 ? -1 + (2 * i) / (labels.length - 1) : 0)) };
}

function setBusy(busy) {
  document.body.dataset.run = busy ? "running" : "done"; // for scripts and tests driving the page
  $("classify").disabled = busy;
  $("cancel").hidden = !busy;
  $("progress").hidden = !busy;
  if (busy) $("cancel").focus();
  else if (document.activeElement === $("cancel") || !document.activeElement) $("classify").focus();
}

const documentMode = () => document.querySelector('input[name="mode"]:checked').value === "document";

function showMode() {
  const whole = documentMode();
  $("texts-label").textContent = whole ? "A document: press release, call transcript, filing" : "Headlines, one per line";
  $("drop-zone").hidden = whole; // files are read as rows of headlines
  if (whole && state.file) clearFile();
}

// The server's offsets count code points (Python); a JavaScript string counts UTF-16 units.
function utf16Offsets(text) {
  const at = [0];
  let units = 0;
  for (const character of text) {
    units += character.length;
    at.push(units);
  }
  return at;
}

async function runDocument() {
  const text = $("texts").value;
  if (!text.trim()) {
    showMessage("Paste a document first.");
    return;
  }
  showMessage("");
  const scheme = selectedScheme();
  const controller = new AbortController();
  const run = { scheme, labels: null, values: null, items: [], finished: 0, controller, source: "document",
                table: null, document: null };
  state.run = run;
  state.sort = "none";
  setBusy(true);
  $("progress-text").textContent = "Labelling the document sentence by sentence…";
  try {
    const answer = await classifyDocument(text, scheme, {
      signal: controller.signal,
      onWait: (seconds, message) => { $("progress-text").textContent = `${message} Retrying in ${seconds} s…`; },
    });
    Object.assign(run, labelSet(scheme, answer));
    run.items = answer.sentences.map((s, i) => ({ n: i + 1, text: s.text, label: s.label, score: s.score,
                                                   probs: s.probs, error: s.error?.message }));
    run.finished = run.items.length;
    run.document = { text, summary: answer.document, sentences: answer.sentences };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showKeyPanel(apiKey() ? rejectedKeyMessage(error) : "This server needs its API key: enter it above, then classify again.");
      showMessage(`Not classified: ${error.message}`);
    } else if (error?.name === "CancelledByUser") {
      showMessage("Cancelled.");
    } else {
      showMessage(`Not classified: ${error.message ?? error}`);
    }
  } finally {
    run.done = true;
    setBusy(false);
    if (run.labels === null) Object.assign(run, { labels: [], values: [] });
    render();
    renderDocument(run);
    refreshStatus();
  }
}

function renderDocument(run) {
  const view = $("document-view");
  if (!run?.document) {
    view.hidden = true;
    return;
  }
  const { text, summary, sentences } = run.document;
  const at = utf16Offsets(text);
  const parts = [];
  let done = 0;
  for (const sentence of sentences) {
    const start = at[sentence.start];
    const end = at[sentence.end];
    if (start > done) parts.push(document.createTextNode(text.slice(done, start)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end); // text, never HTML
    if (sentence.label) {
      mark.className = polarityClass(run.values[run.labels.indexOf(sentence.label)]);
      mark.title = `${sentence.label} (${signed(sentence.score)})`;
      mark.dataset.label = sentence.label;
    } else {
      mark.className = "failed";
      mark.title = sentence.error?.message ?? "not classified";
    }
    parts.push(mark);
    done = end;
  }
  if (done < text.length) parts.push(document.createTextNode(text.slice(done)));
  $("document-text").replaceChildren(...parts);
  $("document-summary").textContent = summary.label === null ? "No sentence could be labelled."
    : `${summary.label} (mean sentence score ${signed(summary.score)}); ${plural(summary.scored, "sentence")}, `
      + `${Math.round(summary.non_neutral_share * 100)}% not neutral`;
  view.hidden = false;
}

async function runClassification() {
  if (documentMode()) return runDocument();
  $("document-view").hidden = true;
  const texts = collectTexts();
  if (!texts.length) {
    showMessage("Paste at least one headline (one per line), or choose a file.");
    return;
  }
  showMessage("");
  const scheme = selectedScheme();
  const limits = state.status?.limits ?? DEFAULT_LIMITS;
  const controller = new AbortController();
  const run = { scheme, labels: null, values: null, items: texts.map((text, i) => ({ n: i + 1, text })),
                finished: 0, controller, source: state.file?.name ?? "text box", table: state.file?.table ?? null };
  state.run = run;
  state.sort = "none";
  setBusy(true);
  const { chunks, tooLong } = planChunks(texts, limits);
  for (const i of tooLong) run.items[i].error = `longer than ${limits.max_text_chars.toLocaleString()} characters`;
  run.finished = tooLong.length;
  if (!chunks.length) Object.assign(run, { labels: [], values: [] }); // nothing could be sent
  scheduleRender();

  // Two requests in flight; the first failure (or Cancel) aborts the other, and the run is reported
  // only once both have settled, so the message, the table and the chart count the same texts.
  let next = 0;
  const worker = async () => {
    try {
      while (next < chunks.length && !controller.signal.aborted) {
        const chunk = chunks[next++];
        const answer = await classify(chunk.map((i) => texts[i]), scheme, {
          signal: controller.signal,
          onWait: (seconds, message) => { $("progress-text").textContent = `${message} Retrying in ${seconds} s…`; },
        });
        if (run.labels === null) Object.assign(run, labelSet(scheme, answer));
        answer.results.forEach((result, k) => {
          const item = run.items[chunk[k]];
          if (result.error) item.error = result.error.message;
          else Object.assign(item, { label: result.label, score: result.score, probs: result.probs });
        });
        run.finished += chunk.length;
        scheduleRender();
      }
    } catch (error) {
      if (!controller.signal.aborted) controller.abort(error);
    }
  };
  try {
    await Promise.all(Array.from({ length: PARALLEL_REQUESTS }, worker));
    const error = controller.signal.aborted ? controller.signal.reason : null;
    const progress = `${run.finished.toLocaleString()} of ${texts.length.toLocaleString()} texts`;
    if (error instanceof ApiError && error.status === 401) {
      showKeyPanel(apiKey() ? rejectedKeyMessage(error) : "This server needs its API key: enter it above, then classify again.");
      showMessage(`Not classified: ${error.message}`);
    } else if (error?.name === "CancelledByUser") {
      showMessage(`Cancelled after ${progress}; the results so far are below.`);
    } else if (error) {
      showMessage(`Stopped after ${progress}: ${error.message ?? error}`);
    }
  } finally {
    run.done = true;
    setBusy(false);
    render();
    refreshStatus();
  }
}

function cancelRun() {
  const error = new Error("cancelled");
  error.name = "CancelledByUser";
  state.run?.controller.abort(error);
}

// -- results -------------------------------------------------------------------------------------

function scheduleRender() {
  if (state.renderTimer !== null) return;
  state.renderTimer = setTimeout(render, 150);
}

function sortedItems(items) {
  if (state.sort === "none") return items;
  const sign = state.sort === "asc" ? 1 : -1;
  const key = (item) => (typeof item.score === "number" ? item.score : null);
  return [...items].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka === null || kb === null) return (ka === null) - (kb === null) || a.n - b.n; // errors last
    return sign * (ka - kb) || a.n - b.n;
  });
}

// A score as shown: three decimals with its sign ("+0.667", "-0.333", "0.000", never "-0.000").
function signed(score) {
  const text = score.toFixed(3);
  return Number(text) === 0 ? "0.000" : Number(text) > 0 ? `+${text}` : text;
}

function percent(p) {
  return `${(p * 100).toFixed(p < 0.1 ? 1 : 0)}%`;
}

function resultRow(item, run) {
  const row = document.createElement("tr");
  const cell = (className, text) => {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    row.append(td);
    return td;
  };
  cell("num", String(item.n));
  const textCell = cell("text", item.text);
  textCell.title = item.text.slice(0, 2000);
  const labelCell = cell("label");
  if (item.label !== undefined) {
    const badge = document.createElement("span");
    badge.className = `badge ${polarityClass(run.values[run.labels.indexOf(item.label)])}`;
    badge.textContent = item.label;
    labelCell.append(badge, " ", whyToggle(item));
  } else if (item.error !== undefined) {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = item.error;
    labelCell.append(error);
  } else {
    labelCell.textContent = "…";
  }
  cell("num score", typeof item.score === "number" ? signed(item.score) : "");
  const probsCell = cell("probs");
  if (item.probs) {
    const bars = document.createElement("div");
    bars.className = "bars";
    bars.setAttribute("role", "img");
    bars.setAttribute("aria-label", run.labels.map((l) => `${l} ${percent(item.probs[l])}`).join(", "));
    run.labels.forEach((label, i) => {
      const bar = document.createElement("span");
      bar.className = `bar ${polarityClass(run.values[i])}`;
      bar.style.height = `${Math.max(4, item.probs[label] * 100)}%`; // CSSOM, allowed by the page's CSP
      bar.title = `${label}: ${percent(item.probs[label])}`;
      bars.append(bar);
    });
    probsCell.append(bars);
  }
  return row;
}

function render() {
  // A render now makes a queued one needless: it would only redraw the same rows under the reader.
  clearTimeout(state.renderTimer);
  state.renderTimer = null;
  const run = state.run;
  if (!run) return;
  const total = run.items.length;
  $("progress").value = total ? run.finished / total : 1;
  $("progress-text").textContent = run.done ? `${run.finished.toLocaleString()} of ${total.toLocaleString()} texts`
    : `Classifying… ${run.finished.toLocaleString()} of ${total.toLocaleString()} texts`;
  if (run.labels === null) return; // nothing answered yet
  $("results-panel").hidden = false;

  const labelled = run.items.filter((item) => item.label !== undefined);
  const counts = run.labels.map((label) => labelled.filter((item) => item.label === label).length);
  drawDistribution($("chart"), run.labels, run.values, counts);
  const mean = labelled.length ? labelled.reduce((sum, item) => sum + item.score, 0) / labelled.length : null;
  $("mean-score").textContent = mean === null ? "–" : signed(mean);
  $("mean-marker").hidden = mean === null;
  if (mean !== null) $("mean-marker").style.left = `${((mean + 1) / 2) * 100}%`;
  const errors = run.items.filter((item) => item.error !== undefined).length;
  $("counts").textContent = `${labelled.length.toLocaleString()} labelled` +
    (errors ? `, ${errors.toLocaleString()} with an error` : "") + ` (${run.labels.length} labels, from ${run.source})`;

  const header = $("score-header");
  header.setAttribute("aria-sort", { none: "none", asc: "ascending", desc: "descending" }[state.sort]);
  $("sort-mark").textContent = { none: "↕", asc: "▲", desc: "▼" }[state.sort];
  const shown = sortedItems(run.items).slice(0, TABLE_ROWS);
  // Rows are drawn anew (progress, sorting, a resize): the focused toggle or word gets the focus back.
  const body = $("results").tBodies[0];
  const focused = document.activeElement?.closest?.("[data-key]");
  const focusKey = body.contains(focused) ? focused.dataset.key : null;
  body.replaceChildren(...shown.flatMap((item) => (item.why?.open ? [resultRow(item, run), whyRow(item, run)]
                                                                   : [resultRow(item, run)])));
  if (focusKey) body.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  $("table-note").textContent = total > TABLE_ROWS
    ? `The table shows ${TABLE_ROWS} of ${total.toLocaleString()} rows; the chart and the CSV have them all.` : "";
  $("download").disabled = !run.done;
}

// -- why: a row's words shaded by their weight ----------------------------------------------------

const WHY_COLUMNS = 5;

function whyToggle(item) {
  const button = document.createElement("button");
  button.type = "button"; // a real button: Tab reaches it, Enter and Space press it
  button.className = "why-toggle";
  button.textContent = "Why";
  button.dataset.key = `toggle-${item.n}`;
  button.dataset.n = String(item.n);
  button.setAttribute("aria-label", `Why: the words that moved text ${item.n}'s label`);
  button.setAttribute("aria-expanded", String(Boolean(item.why?.open)));
  if (item.why?.open) button.setAttribute("aria-controls", `why-${item.n}`);
  return button;
}

function whyRow(item, run) {
  const row = document.createElement("tr");
  row.className = "why-row";
  const cell = document.createElement("td");
  cell.colSpan = WHY_COLUMNS;
  cell.append(whyPanel(item, run));
  row.append(cell);
  return row;
}

// The open panel: a status line (working, the error, or the label and its strongest words), the text
// with each word shaded and focusable, the focused or hovered word's numbers, and the legend.
function whyPanel(item, run) {
  const panel = document.createElement("div");
  panel.className = "why";
  panel.id = `why-${item.n}`;
  panel.setAttribute("role", "region");
  panel.setAttribute("aria-label", `Why text ${item.n} got its label`);
  const status = paragraph("why-status");
  status.setAttribute("role", "status");
  panel.append(status);
  const why = item.why;
  const failure = why.error ?? (why.answer?.error ? { code: why.answer.error.code, message: why.answer.error.message } : null);
  if (why.pending) {
    status.textContent = "Explaining: the text is scored again without each of its words…";
    panel.dataset.state = "pending";
    return panel;
  }
  if (failure) {
    status.textContent = `Not explained: ${failure.message}`;
    status.classList.add("error");
    panel.dataset.state = "error";
    panel.dataset.code = failure.code ?? "";
    return panel;
  }
  const answer = why.answer;
  const words = answer.words ?? [];
  const segments = wordSegments(item.text, words);
  // The strongest of the shaded words: a word left unshaded is no reason, even if it ranks third.
  const shaded = segments === null ? words : segments.filter((s) => s.word && s.side !== "none").map((s) => s.word);
  const strongest = strongestWords(shaded).map((w) => `${w.text} ${fixedSigned(w.weight, 2)}`).join("; ");
  status.textContent = `${answer.label} (score ${signed(answer.score)}). `
    + (!words.length ? "No words to weigh." : shaded.length ? `Strongest: ${strongest}.`
      : "No single word moved the score by itself: each is left unshaded.");
  panel.dataset.state = "done";

  const text = paragraph("why-text");
  if (segments === null) {
    text.textContent = item.text; // the offsets do not fit this text: shown plain, and said
    status.append(" (The words could not be placed in this text.)");
  } else {
    segments.forEach((segment, index) => {
      if (!segment.word) {
        text.append(segment.text); // a text node: "<b>" stays the characters < b >
        return;
      }
      text.append(wordSpan(segment, answer.label, `w-${item.n}-${index}`));
    });
  }
  const detail = paragraph("why-detail", "Hover over or Tab to a word for its numbers. Esc closes.");
  detail.id = `why-${item.n}-detail`;
  panel.append(text, detail, legend());
  return panel;
}

function paragraph(className, text) {
  const p = document.createElement("p");
  p.className = className;
  if (text !== undefined) p.textContent = text;
  return p;
}

// "+0.41" / "-0.12", as Python's {:+.2f} writes a weight in the CLI, Excel and the eval report (-0.0,
// which JSON keeps, included).
function fixedSigned(value, digits) {
  return `${value < 0 || Object.is(value, -0) ? "-" : "+"}${Math.abs(value).toFixed(digits)}`;
}

// The direction is said as the shading shows it: a word left unshaded is "next to no push", not a
// "push towards positive" of +0.000.
function wordNumbers(word, side, label) {
  const push = { neg: "pushed towards negative", pos: "pushed towards positive", none: "next to no push" }[side];
  return `weight ${fixedSigned(word.weight, 3)} (${push}); p(${label}) ${fixedSigned(word.label_weight, 3)}; `
    + `without it: ${word.label_without}`;
}

function wordSpan(segment, label, key) {
  const { word, shade, side } = segment;
  const span = document.createElement("span");
  span.className = `w ${side}`;
  span.textContent = segment.text;
  span.tabIndex = 0; // reachable by Tab: its numbers show on focus as on hover
  // Focusable, so it needs a role that carries a name: a term, whose definition is its numbers (not a
  // button: pressing it would do nothing).
  span.setAttribute("role", "term");
  span.dataset.key = key;
  span.dataset.weight = String(word.weight);
  span.dataset.labelWeight = String(word.label_weight);
  span.dataset.shade = shade.toFixed(3);
  span.style.setProperty("--shade", shade.toFixed(3)); // CSSOM, allowed by the page's CSP
  const numbers = wordNumbers(word, side, label);
  span.title = numbers;
  span.setAttribute("aria-label", `${word.text}: ${numbers}`);
  return span;
}

function legend() {
  const p = paragraph("why-legend");
  const swatch = (side, text) => {
    const span = document.createElement("span");
    span.className = `w ${side} swatch`;
    span.textContent = text;
    return span;
  };
  p.append(swatch("neg", "Red"), " pushed the label towards negative, ", swatch("pos", "green"),
           " towards positive; the deeper, the stronger. Weight: the score (-1 to +1) with the word minus "
           + "without it.");
  return p;
}

function toggleWhy(button) {
  const run = state.run;
  const item = run?.items[Number(button.dataset.n) - 1];
  if (!item) return;
  item.why ??= { open: false };
  item.why.open = !item.why.open;
  button.setAttribute("aria-expanded", String(item.why.open));
  if (!item.why.open) {
    button.removeAttribute("aria-controls");
    $(`why-${item.n}`)?.closest("tr").remove();
    return;
  }
  if (!item.why.answer && !item.why.pending) {
    item.why.error = null; // a failed request is asked again when the row is opened again
    fetchWhy(item, run);
  }
  button.setAttribute("aria-controls", `why-${item.n}`);
  button.closest("tr").after(whyRow(item, run));
}

async function fetchWhy(item, run) {
  item.why.pending = true;
  try {
    item.why.answer = await explain(item.text, run.scheme, {
      onWait: (seconds, message) => { whyStatus(item, run, `${message} Retrying in ${seconds} s…`); },
    });
  } catch (error) {
    item.why.error = { code: error.code, message: error.message ?? String(error) };
    if (error instanceof ApiError && error.status === 401) {
      showKeyPanel(apiKey() ? rejectedKeyMessage(error) : "This server needs its API key: enter it above.");
    }
  } finally {
    item.why.pending = false;
    const shown = state.run === run ? $(`why-${item.n}`) : null; // not a panel of a later run
    if (shown) {
      // Filled in place, its status line kept: a screen reader announces a live region's new text, not
      // one that is put into the page with its text already in it.
      const fresh = whyPanel(item, run);
      const [freshStatus, ...rest] = fresh.children;
      const status = shown.querySelector(".why-status");
      status.className = freshStatus.className;
      status.textContent = freshStatus.textContent;
      for (const child of [...shown.children]) if (child !== status) child.remove();
      status.after(...rest);
      Object.assign(shown.dataset, fresh.dataset);
    }
  }
}

function whyStatus(item, run, text) {
  if (state.run !== run) return;
  const status = $(`why-${item.n}`)?.querySelector(".why-status");
  if (status) status.textContent = text;
}

// A word's numbers in its panel's detail line, on focus (keyboard) and on hover (mouse).
function showWordNumbers(event) {
  const word = event.target.closest?.(".why-text .w");
  if (!word) return;
  const detail = word.closest(".why").querySelector(".why-detail");
  detail.textContent = `${word.textContent}: ${word.title}`;
}

function onTableKey(event) {
  if (event.key !== "Escape") return;
  const panel = event.target.closest?.(".why");
  if (!panel) return;
  const button = $("results").querySelector(`[data-key="toggle-${panel.id.slice(4)}"]`);
  if (!button) return;
  toggleWhy(button);
  button.focus();
}

function cycleSort() {
  state.sort = { none: "desc", desc: "asc", asc: "none" }[state.sort];
  render();
}

function downloadCsv() {
  const run = state.run;
  if (!run?.labels) return;
  // A file's download is the file (every column, rows in order) with the results after them, as
  // `finsent classify --input` writes it; the text box's is the texts with their results.
  const file = run.table;
  const columns = file ? file.columns : ["text"];
  const added = ["label", "score", ...run.labels.map((l) => `p_${l.replaceAll(" ", "_")}`), "error"];
  const prefix = added.some((name) => columns.includes(name)) ? "finsent_" : ""; // never two columns of one name
  const header = [...columns, ...added.map((name) => prefix + name)];
  const rows = run.items.map((item, i) => [
    ...(file ? Array.from({ length: columns.length }, (_, k) => file.rows[i][k] ?? "") : [item.text]),
    item.label ?? "",
    typeof item.score === "number" ? item.score.toFixed(6) : "",
    ...run.labels.map((l) => (item.probs ? item.probs[l].toFixed(6) : "")),
    item.error ?? "",
  ]);
  const blob = new Blob([toCsv([header, ...rows])], { type: "text/csv;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const base = run.source === "text box" ? "finsent" : run.source.replace(/\.[^.]*$/, "");
  link.download = `${base}.labels-${run.scheme}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// -- wiring --------------------------------------------------------------------------------------

async function copyFrom(id, button) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    getSelection().selectAllChildren($(id)); // no clipboard access: selected for Ctrl+C
    button.textContent = "Selected";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

function init() {
  const origin = window.location.origin;
  showWebserviceFormula(false);
  showOfficeFormula();
  $("openai-base").textContent = `base_url=${origin}/v1`;

  $("classify").addEventListener("click", runClassification);
  $("cancel").addEventListener("click", cancelRun);
  $("sort-score").addEventListener("click", cycleSort);
  $("download").addEventListener("click", downloadCsv);
  const body = $("results").tBodies[0];
  body.addEventListener("click", (event) => {
    const button = event.target.closest?.("button.why-toggle");
    if (button) toggleWhy(button);
  });
  body.addEventListener("focusin", showWordNumbers);
  body.addEventListener("mouseover", showWordNumbers);
  body.addEventListener("keydown", onTableKey);
  $("clear-file").addEventListener("click", clearFile);
  $("texts").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !$("classify").disabled) {
      event.preventDefault(); // else the same key press would also press Cancel, which takes the focus
      runClassification();
    }
  });
  $("file").addEventListener("change", () => { if ($("file").files[0]) useFile($("file").files[0]); });
  window.addEventListener("resize", scheduleRender); // the chart is drawn for the width it is shown at
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", showMode);
  $("sheet").addEventListener("change", async () => {
    const { workbook, name } = state.file;
    try {
      const table = tableFromRows(await workbook.readSheet(workbook.sheets[Number($("sheet").value)]));
      state.file = { name, workbook, table };
      showFileOptions();
    } catch (error) {
      showMessage(`Cannot read that sheet: ${error.message}`);
    }
  });
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyFrom(button.dataset.copy, button));
  }
  // A file dropped anywhere on the page is read (the browser would otherwise open it, leaving the page).
  const zone = $("drop-zone");
  window.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  window.addEventListener("dragleave", (event) => { if (!event.relatedTarget) zone.classList.remove("over"); });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer?.files[0];
    if (file) useFile(file);
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault(); // handled here: the page's CSP allows no form submission
    setApiKey($("api-key").value.trim());
    $("api-key").value = "";
    $("key-message").textContent = "Checking the key…";
    refreshStatus();
  });
  refreshStatus();
}

init();
