// FinSent Local's Excel custom functions (Office add-in: Excel for Mac, Excel on the web, Windows).
//
// Served by `finsent serve --https-port ...` at /addin/, so every call goes to the same origin (the
// server that served this file): no CORS, and the server's host check and API key rules apply as
// they are. The cells it writes are the ones the xlwings functions write (excel/cells.py): the same
// labels, blanks for blank cells and the same `#FINSENT! ...` messages; tests compare the two.
//
// Calls made in one recalculation are gathered (BATCH_DELAY_MS) into few /v1/classify requests: a
// column of 2,000 cells is 8 requests, not 2,000. Results are kept (bounded), so a recalculation
// does not ask again. A plain script (no modules): Office loads it into its shared runtime.

(function (root) {
  "use strict";

  const PREFIX = "#FINSENT! ";
  const MAX_TEXT_CHARS = 32767; // the server's limit (finsent_local/limits.py; a test checks they agree)
  const MAX_TEXTS_PER_REQUEST = 256;
  const MAX_REQUEST_BYTES = 2 * 1024 * 1024; // half the server's 4 MB body limit
  const BATCH_DELAY_MS = 50;
  const TIMEOUT_MS = 60000;
  const DOCUMENT_TIMEOUT_MS = 300000; // a document is labelled sentence by sentence (as cells.py)
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

  // -- results kept across recalculations ------------------------------------------------------------

  const cache = new Map(); // key -> result, oldest first
  const cacheKey = (scheme, text) => `${config.url}\u0000${scheme}\u0000${text}`;
  function remember(key, result) {
    cache.delete(key);
    cache.set(key, result);
    while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value);
  }

  // -- batching -------------------------------------------------------------------------------------

  let pending = []; // {scheme, texts, resolve}
  let timer = null;

  function requestResults(scheme, texts) {
    return new Promise((resolve) => {
      pending.push({ scheme, texts, resolve });
      if (timer === null) timer = setTimeout(flush, BATCH_DELAY_MS);
    });
  }

  async function flush() {
    const batch = pending;
    pending = [];
    timer = null;
    const errors = new Map(); // this batch's per-text errors (not cached), handed to its calls
    const byScheme = new Map();
    for (const call of batch) {
      if (!byScheme.has(call.scheme)) byScheme.set(call.scheme, new Set());
      for (const text of call.texts) byScheme.get(call.scheme).add(text);
    }
    const failures = new Map(); // scheme -> message for the whole call
    await Promise.all([...byScheme].map(async ([scheme, texts]) => {
      try {
        for (const chunk of chunks([...texts])) {
          const answers = await post("/v1/classify", { texts: chunk, scheme });
          chunk.forEach((text, i) => {
            const result = answers.results[i];
            // Errors are not kept: the server may be fixed, then the sheet recalculated.
            if (result && !result.error) remember(cacheKey(scheme, text), result);
            else errors.set(cacheKey(scheme, text), result && result.error ? result.error.message : "no result");
          });
        }
      } catch (error) {
        failures.set(scheme, error.message);
      }
    }));
    for (const call of batch) call.resolve({ failure: failures.get(call.scheme) || null, errors });
  }

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

  // The labels of each scheme, in scale order, as the server says (GET /v1/status, asked once): the
  // header of FINSENT_PROBS when no cell got an answer to take them from. Not a copy kept here.
  let schemeLabels = null;
  function labelsOf(schemeName) {
    if (schemeLabels === null) {
      schemeLabels = call("GET", "/v1/status").then((status) => {
        const labels = {};
        for (const [name, scheme] of Object.entries(status.schemes || {})) labels[name] = scheme.labels;
        if (!Object.keys(labels).length) throw new Error("the model is still loading; try again shortly");
        return labels;
      });
      schemeLabels.catch(() => { schemeLabels = null; }); // asked again next time
    }
    return schemeLabels.then((labels) => labels[schemeName]);
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
  // string instead of a grid when nothing can be done (bad scheme, server down), as in cells.py.
  async function classifyGrid(value, scheme, render) {
    const schemeName = normalizeScheme(scheme);
    if (schemeName === null) return `${PREFIX}scheme must be "3" or "7"`;
    const grid = asGrid(value);
    const toAsk = [];
    for (const row of grid) {
      for (const cell of row) {
        if (typeof cell === "string" && !isBlank(cell) && cellProblem(cell) === null &&
            !cache.has(cacheKey(schemeName, cell))) {
          toAsk.push(cell);
        }
      }
    }
    let errors = new Map();
    if (toAsk.length) {
      const answer = await requestResults(schemeName, toAsk);
      if (answer.failure) return PREFIX + answer.failure;
      errors = answer.errors;
    }
    return cellsOf(grid, (cell) => cacheKey(schemeName, cell), errors, render);
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

  const functions = { FINSENT, FINSENT_SCORE, FINSENT_PROBS, FINSENT_DOC, FINSENT_DOC_SCORE };
  if (root.CustomFunctions) {
    for (const [id, fn] of Object.entries(functions)) root.CustomFunctions.associate(id, fn);
  }
  root.FinSentFunctions = { ...functions, config, cache }; // for tests and the console
})(typeof globalThis !== "undefined" ? globalThis : this);
