// The page: texts in (text box or a file's column), /v1/classify in chunks (cancellable, progress
// shown), results out (table, chart, CSV). Every text from a user or a file is put into the page with
// textContent or as an attribute value, never as HTML.

import { ApiError, apiKey, classify, classifyDocument, getHealth, getStatus, planChunks, setApiKey } from "./api.js";
import { drawDistribution, polarityClass } from "./chart.js";
import {
  columnLetters, decodeText, guessTextColumn, linesOf, parseDelimited, sniffDelimiter, tableFromLines, tableFromRows,
  toCsv,
} from "./tables.js";
import { openWorkbook } from "./xlsx.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_LIMITS = { max_texts_per_request: 256, max_text_chars: 32767, max_body_bytes: 4 * 1024 * 1024 };
const TABLE_ROWS = 500; // rows drawn in the table; the chart and the download cover every row
const PARALLEL_REQUESTS = 2; // the next chunk waits at the server while one is computed: no idle gap

const state = { status: null, file: null, run: null, sort: "none", renderQueued: false };

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
  if (state.renderQueued) return;
  state.renderQueued = true;
  setTimeout(() => { state.renderQueued = false; render(); }, 150);
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
    labelCell.append(badge);
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
  $("results").tBodies[0].replaceChildren(...shown.map((item) => resultRow(item, run)));
  $("table-note").textContent = total > TABLE_ROWS
    ? `The table shows ${TABLE_ROWS} of ${total.toLocaleString()} rows; the chart and the CSV have them all.` : "";
  $("download").disabled = !run.done;
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
