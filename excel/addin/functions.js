// FinSent Local's Excel custom functions (Office add-in: Excel for Mac, Excel on the web, Windows).
//
// Served by `finsent serve --https-port ...` at /addin/, so every call goes to the same origin (the
// server that served this file): no CORS, and the server's host check and API key rules apply as
// they are. The cells it writes are the ones the xlwings functions write (excel/cells.py): the same
// labels, blanks for blank cells and the same `#FINSENT! ...` messages; tests compare the two.
//
// Calls made in one recalculation are gathered (BATCH_DELAY_MS) into few /v1/classify requests: a
// column of 2,000 cells is 8 requests, not 2,000; =LOCAL.FINSENT.WHY's texts likewise into few
// /v1/explain requests, each within the server's word limit. Results are kept (bounded), so a
// recalculation does not ask again. A plain script (no modules): Office loads it into its shared runtime.

(function (root) {
  "use strict";

  const PREFIX = "#FINSENT! ";
  const MAX_TEXT_CHARS = 32767; // the server's limit (finsent_local/limits.py; a test checks they agree)
  const MAX_TEXTS_PER_REQUEST = 256;
  const MAX_REQUEST_BYTES = 2 * 1024 * 1024; // half the server's 4 MB body limit
  const BATCH_DELAY_MS = 50;
  const TIMEOUT_MS = 60000;
  const DOCUMENT_TIMEOUT_MS = 300000; // a document is labelled sentence by sentence (as cells.py)
  // A /v1/explain request: the server answers 503 when it has not started on it within its max_wait_s
  // (60 s) or not finished in as long again; cells.EXPLAIN_TIMEOUT_S (a test checks they agree).
  const EXPLAIN_TIMEOUT_MS = 130000;
  const WHY_WORDS = 3; // functions.WHY_WORDS: the strongest words a FINSENT.WHY cell lists
  const CACHE_ENTRIES = 50000;
  const SCHEMES = ["3", "7"];
  const EXCEL_ERRORS = new Set(["#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NAME?", "#NULL!", "#SPILL!",
                                "#CALC!", "#GETTING_DATA"]);

  const config = {
    url: root.location ? root.location.origin : "",
    // A server started with --api-key: the manifest's page address carries it as #key=... (the
    // fragment is never sent over the network or logged).
    apiKey: (() => {
      const match = /[#&]key=([^&]*)/.exec((root.location && root.location.hash) || "");
      if (!match) return null;
      try {
        return decodeURIComponent(match[1]); // the manifest writes it URL-encoded
      } catch (e) {
        return match[1]; // a manifest from before keys were encoded: the key as written
      }
    })(),
  };

  // -- cells -> texts, results -> cells (as excel/cells.py) --------------------------------------

  function normalizeScheme(scheme) {
    if (scheme === null || scheme === undefined || scheme === "") return "7";
    const value = String(scheme).trim();
    return SCHEMES.includes(value) ? value : null;
  }

  function asGrid(value) {
    if (Array.isArray(value)) return Array.isArray(value[0]) ? value : [value];
    return [[value]];
  }

  const isBlank = (cell) => cell === null || cell === undefined || (typeof cell === "string" && cell.trim() === "");

  function cellProblem(cell) {
    if (typeof cell === "boolean") return "not text (TRUE/FALSE)";
    if (typeof cell === "number") return "not text (a number)"; // Office passes dates as numbers too
    if (typeof cell !== "string") return "not text";
    if (EXCEL_ERRORS.has(cell.trim())) return `the cell holds an error (${cell.trim()})`;
    if ([...cell].length > MAX_TEXT_CHARS) return "text too long";
    return null;
  }

  // -- words, as the server counts and weighs them (finsent_local/engine/occlusion.py) ----------------

  // occlusion.units(text, "word"): reader words, a number kept whole with its sign, currency and unit
  // ("$1.2bn", "-8%", "40 million"). Python's \w, \d, \s and \b are Unicode there, so they are spelled
  // out here (\p{...} and Python's white space); a test compares the counts on awkward texts.
  const WORD_CHAR = "\\p{L}\\p{N}"; // Python's [^\W_]: a letter or a number
  const PY_SPACE = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
  const SCALE = "(?:bn|mn|mln|million|billion|trillion|thousand|k|m|b|x|bps|bp|pp|pts|pt|percent)";
  const SCALE_END = `(?![${WORD_CHAR}_])`; // Python's \b after the scale's last letter
  const NUMBER = `[-+\\u2212]?[$\\u20ac\\u00a3\\u00a5]?[-+\\u2212]?\\p{Nd}+(?:[.,]\\p{Nd}+)*` +
    `(?:%|${SCALE}${SCALE_END}|${PY_SPACE}${SCALE}${SCALE_END}(?!['\\u2019-][${WORD_CHAR}_]))?(?![${WORD_CHAR}])`;
  const WORD = `[${WORD_CHAR}]+(?:['\\u2019&.\\-][${WORD_CHAR}]+)*`;
  const UNIT = new RegExp(`${NUMBER}|${WORD}`, "gu");

  const countWords = (text) => [...text.matchAll(UNIT)].length;

  // occlusion.strongest: the k words that moved the score most (|weight|, then |label_weight|, then
  // the earlier word), strongest first.
  function strongest(words, k) {
    return words.map((word, i) => [word, i])
      .sort(([a, i], [b, j]) => (Math.abs(b.weight) - Math.abs(a.weight)) ||
                                (Math.abs(b.label_weight) - Math.abs(a.label_weight)) || (i - j))
      .slice(0, k).map(([word]) => word);
  }

  // Python's f"{x:+.2f}". toFixed rounds an exact tie (x an odd multiple of 1/8: 0.125, 0.375...) away
  // from zero, Python's format to the even cent; -0.0 keeps its sign in Python.
  function signedCents(x) {
    const size = Math.abs(x);
    let digits = size.toFixed(2);
    if (Number.isInteger(size * 8) && !Number.isInteger(size * 4)) {
      const cents = Math.floor(size * 100); // exact: size * 100 is a whole number and a half
      digits = ((cents % 2 === 0 ? cents : cents + 1) / 100).toFixed(2);
    }
    return (x < 0 || Object.is(x, -0) ? "-" : "+") + digits;
  }

  // occlusion.strongest_text: "cuts -0.41; guidance -0.12; Virtucon -0.01", as cells.why_text.
  function whyText(result) {
    if (!result.words.length) return `${PREFIX}not explained: the text has no words`;
    return strongest(result.words, WHY_WORDS).map((w) => `${w.text} ${signedCents(w.weight)}`).join("; ");
  }

  const thousands = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); // Python's {n:,}

  // -- results kept across recalculations ------------------------------------------------------------

  const cache = new Map(); // key -> result, oldest first
  const cacheKey = (scheme, text) => `${config.url}\u0000${scheme}\u0000${text}`;
  // Labels under the scheme's name, explanations apart from them (as cells.py's cache kinds).
  const kindScheme = (kind, scheme) => (kind === "explain" ? `explain ${scheme}` : scheme);
  function remember(key, result) {
    cache.delete(key);
    cache.set(key, result);
    while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value);
  }

  // -- batching -------------------------------------------------------------------------------------

  let pending = []; // {kind, scheme, texts, resolve}; kind "text" (labels) or "explain" (words)
  let timer = null;

  function requestResults(kind, scheme, texts) {
    return new Promise((resolve) => {
      pending.push({ kind, scheme, texts, resolve });
      if (timer === null) timer = setTimeout(flush, BATCH_DELAY_MS);
    });
  }

  async function flush() {
    const batch = pending;
    pending = [];
    timer = null;
    const errors = new Map(); // this batch's per-text errors (not cached), handed to its calls
    const groups = new Map(); // kind + scheme -> {kind, scheme, texts}
    const groupOf = (call) => `${call.kind}\u0000${call.scheme}`;
    for (const call of batch) {
      const group = groupOf(call);
      if (!groups.has(group)) groups.set(group, { kind: call.kind, scheme: call.scheme, texts: new Set() });
      for (const text of call.texts) groups.get(group).texts.add(text);
    }
    const failures = new Map(); // group -> message for the whole call
    await Promise.all([...groups].map(async ([group, { kind, scheme, texts }]) => {
      const explaining = kind === "explain";
      const keyOf = (text) => cacheKey(kindScheme(kind, scheme), text);
      try {
        const requests = explaining ? explainChunks([...texts], await explainWordLimit()) : chunks([...texts]);
        for (const chunk of requests) {
          const answers = explaining
            ? await call("POST", "/v1/explain", { texts: chunk, scheme, unit: "word" }, EXPLAIN_TIMEOUT_MS)
            : await post("/v1/classify", { texts: chunk, scheme });
          chunk.forEach((text, i) => {
            const result = answers.results[i];
            // Errors are not kept: the server may be fixed, then the sheet recalculated.
            if (result && !result.error) remember(keyOf(text), explaining ? shown(result) : result);
            else errors.set(keyOf(text), result && result.error ? result.error.message : "no result");
          });
        }
      } catch (error) {
        if (explaining) statusAnswer = null; // a server restarted with another word limit: asked again
        failures.set(group, error.message);
      }
    }));
    for (const call of batch) call.resolve({ failure: failures.get(groupOf(call)) || null, errors });
  }

  // An explanation as kept: only the words a cell shows (a long text's words would make the cache large).
  const shown = (result) => ({ label: result.label, score: result.score, words: strongest(result.words, WHY_WORDS) });

  function chunks(texts) {
    const out = [];
    let current = [];
    let bytes = 0;
    for (const text of texts) {
      const size = JSON.stringify(text).length * 3;
      if (current.length && (current.length >= MAX_TEXTS_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(text);
      bytes += size;
    }
    if (current.length) out.push(current);
    return out;
  }

  // Explain requests as client.explain_requests cuts them: consecutive texts, at most `maxWords` words
  // in each request (the server refuses more: 413 too_many_words), within chunks()' texts and bytes.
  function explainChunks(texts, maxWords) {
    const out = [];
    for (const part of chunks(texts)) {
      let current = [];
      let words = 0;
      for (const text of part) {
        const n = countWords(text);
        if (current.length && words + n > maxWords) {
          out.push(current);
          current = [];
          words = 0;
        }
        current.push(text);
        words += n;
      }
      if (current.length) out.push(current);
    }
    return out;
  }

  // GET /v1/status, asked once (again after a failure): the labels of each scheme and the limits.
  let statusAnswer = null;
  function serverStatus() {
    if (statusAnswer === null) {
      statusAnswer = call("GET", "/v1/status");
      statusAnswer.catch(() => { statusAnswer = null; }); // asked again next time
    }
    return statusAnswer;
  }

  // The labels of each scheme, in scale order, as the server says: the header of FINSENT_PROBS when no
  // cell got an answer to take them from. Not a copy kept here.
  async function labelsOf(schemeName) {
    const status = await serverStatus();
    const labels = {};
    for (const [name, scheme] of Object.entries(status.schemes || {})) labels[name] = scheme.labels;
    if (!Object.keys(labels).length) {
      statusAnswer = null; // still loading: asked again next time
      throw new Error("the model is still loading; try again shortly");
    }
    return labels[schemeName];
  }

  // The most words one /v1/explain request may hold, as this server says (its limits.max_explain_words).
  async function explainWordLimit() {
    const status = await serverStatus();
    const limit = status.limits && status.limits.max_explain_words;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new Error(`the server at ${config.url} cannot explain words (no max_explain_words in /v1/status); ` +
                      "update FinSent Local");
    }
    return limit;
  }

  const post = (path, payload) => call("POST", path, payload);

  async function call(method, path, payload, timeoutMs = TIMEOUT_MS) {
    const headers = { Accept: "application/json" };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (config.apiKey) headers.Authorization = `Bearer ${config.apiKey}`;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), timeoutMs);
    let response;
    try {
      response = await root.fetch(config.url + path, {
        method, headers, body: payload === undefined ? undefined : JSON.stringify(payload),
        signal: controller.signal, cache: "no-store",
      });
    } catch (error) {
      if (controller.signal.aborted) throw new Error(`server at ${config.url} did not answer in time`);
      const down = new Error(`server not running at ${config.url} - start it with: finsent serve --https-port 8443`);
      down.serverDown = true; // the whole call fails, not one cell
      throw down;
    } finally {
      clearTimeout(timeout);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (data === null || typeof data !== "object") {
      throw new Error(`unexpected answer from ${config.url} (HTTP ${response.status}; is it FinSent Local?)`);
    }
    if (!response.ok) {
      throw new Error((data.error && data.error.message) || `server error (HTTP ${response.status})`);
    }
    return data;
  }

  // -- the functions -----------------------------------------------------------------------------------

  // Results for every cell of `value`, shaped like it; render(result) gives a cell's value. A message
  // string instead of a grid when nothing can be done (bad scheme, server down), as in cells.py. kind
  // "text" labels the texts (/v1/classify), "explain" weighs their words (/v1/explain).
  async function classifyGrid(value, scheme, render, kind = "text") {
    const schemeName = normalizeScheme(scheme);
    if (schemeName === null) return `${PREFIX}scheme must be "3" or "7"`;
    const grid = asGrid(value);
    const keyOf = (cell) => cacheKey(kindScheme(kind, schemeName), cell);
    let toAsk = [];
    for (const row of grid) {
      for (const cell of row) {
        if (typeof cell === "string" && !isBlank(cell) && cellProblem(cell) === null && !cache.has(keyOf(cell))) {
          toAsk.push(cell);
        }
      }
    }
    const errors = new Map();
    if (toAsk.length && kind === "explain") {
      // A text over the word limit alone would be refused with the request it is in: not asked (cells.py).
      let limit;
      try {
        limit = await explainWordLimit();
      } catch (error) {
        return PREFIX + error.message;
      }
      toAsk = toAsk.filter((text) => {
        const words = countWords(text);
        if (words <= limit) return true;
        errors.set(keyOf(text), `not explained: ${thousands(words)} words; at most ${thousands(limit)} are ` +
                                "explained per text");
        return false;
      });
    }
    if (toAsk.length) {
      const answer = await requestResults(kind, schemeName, toAsk);
      if (answer.failure) return PREFIX + answer.failure;
      for (const [key, message] of answer.errors) errors.set(key, message);
    }
    return cellsOf(grid, keyOf, errors, render);
  }

  function cellsOf(grid, keyOf, errors, render) {
    return grid.map((row) => row.map((cell) => {
      if (isBlank(cell)) return "";
      const problem = cellProblem(cell);
      if (problem) return PREFIX + problem;
      const result = cache.get(keyOf(cell));
      if (result) return render(result);
      return PREFIX + (errors.get(keyOf(cell)) || "no result");
    }));
  }

  // Each cell a document: one /v1/documents request per distinct uncached text (the server batches its
  // sentences); a document's own error stays in its cell, a stopped server fails the call (cells.py).
  async function documentGrid(value, scheme, render) {
    const schemeName = normalizeScheme(scheme);
    if (schemeName === null) return `${PREFIX}scheme must be "3" or "7"`;
    const grid = asGrid(value);
    const keyOf = (cell) => cacheKey(`document ${schemeName}`, cell);
    const toAsk = [...new Set(grid.flat().filter((cell) => typeof cell === "string" && !isBlank(cell) &&
                                                            cellProblem(cell) === null && !cache.has(keyOf(cell))))];
    const errors = new Map();
    for (const text of toAsk) {
      try {
        const { document } = await call("POST", "/v1/documents", { text, scheme: schemeName }, DOCUMENT_TIMEOUT_MS);
        if (document.label === null) errors.set(keyOf(text), "no sentence could be classified");
        else remember(keyOf(text), { label: document.label, score: document.score });
      } catch (error) {
        if (error.serverDown) return PREFIX + error.message;
        errors.set(keyOf(text), error.message);
      }
    }
    return cellsOf(grid, keyOf, errors, render);
  }

  const asMatrix = (out) => (typeof out === "string" ? [[out]] : out);

  async function FINSENT(text, scheme) {
    return asMatrix(await classifyGrid(text, scheme, (r) => r.label));
  }

  async function FINSENT_SCORE(text, scheme) {
    return asMatrix(await classifyGrid(text, scheme, (r) => r.score));
  }

  async function FINSENT_PROBS(text, scheme) {
    const schemeName = normalizeScheme(scheme);
    const cells = asGrid(text).flat(); // row by row
    const grid = await classifyGrid(cells.map((c) => [c]), scheme, (r) => r.probs);
    if (typeof grid === "string") return [[grid]];
    const first = grid.find(([value]) => value !== null && typeof value === "object");
    let labels;
    try {
      labels = first ? Object.keys(first[0]) : await labelsOf(schemeName);
    } catch (error) {
      return [[PREFIX + error.message]];
    }
    return [labels, ...grid.map(([value]) => (value !== null && typeof value === "object"
      ? labels.map((label) => value[label])
      : [value, ...Array(labels.length - 1).fill("")]))];
  }

  async function FINSENT_DOC(text, scheme) {
    return asMatrix(await documentGrid(text, scheme, (r) => r.label));
  }

  async function FINSENT_DOC_SCORE(text, scheme) {
    return asMatrix(await documentGrid(text, scheme, (r) => r.score));
  }

  // =LOCAL.FINSENT.WHY(A2,"7"): the strongest words with their weights, a plain text (a function's
  // result is a value: Excel never reads it as a formula, whatever the words hold).
  async function FINSENT_WHY(text, scheme) {
    return asMatrix(await classifyGrid(text, scheme, whyText, "explain"));
  }

  // Ids as functions.json names them (excel/functions.py): Office allows periods in custom functions'
  // ids and names, so the add-in has FINSENT.WHY (xlwings, through VBA, has FINSENT_WHY).
  const functions = { FINSENT, FINSENT_SCORE, FINSENT_PROBS, FINSENT_DOC, FINSENT_DOC_SCORE, "FINSENT.WHY": FINSENT_WHY };
  if (root.CustomFunctions) {
    for (const [id, fn] of Object.entries(functions)) root.CustomFunctions.associate(id, fn);
  }
  // for tests and the console
  root.FinSentFunctions = { ...functions, config, cache, countWords, whyText, explainChunks };
})(typeof globalThis !== "undefined" ? globalThis : this);
