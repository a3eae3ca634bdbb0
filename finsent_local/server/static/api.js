// Calls to this server: the API key (kept in this tab's sessionStorage only), JSON errors made readable,
// and retries of 503 answers after their Retry-After (overload, model loading), a bounded number of times.

const KEY_NAME = "finsent-api-key";
const MAX_RETRIES = 8;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
});

async function once(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, "unreachable", "The server did not answer. Is `finsent serve` still running?");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: a proxy page or a truncated answer; described below by its status
  }
  return { response, data };
}

// One JSON call. onWait(seconds, message) is told about each 503 retry.
export async function call(path, { method, payload, signal, onWait } = {}) {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  for (let attempt = 0; ; attempt++) {
    const { response, data } = await once(path, { method, body, signal });
    if (response.ok && data !== null) return data;
    const error = data?.error ?? {};
    const message = error.message ?? `HTTP ${response.status} from ${path}`;
    if (response.status === 503 && attempt < MAX_RETRIES) {
      const seconds = Math.min(30, Math.max(1, Number(response.headers.get("Retry-After")) || 2));
      onWait?.(seconds, message);
      await sleep(seconds * 1000, signal);
      continue;
    }
    throw new ApiError(response.status, error.code ?? `http_${response.status}`, message);
  }
}

export const getStatus = (signal) => call("/v1/status", { signal });
export const getHealth = async () => (await once("/health")).data;

export function classify(texts, scheme, { signal, onWait } = {}) {
  return call("/v1/classify", { method: "POST", payload: { texts, scheme }, signal, onWait });
}

// One text's label with each word's weight (occlusion: the text scored again without each word, so it
// costs about one classification per word; the server refuses more than limits.max_explain_words).
export function explain(text, scheme, { signal, onWait } = {}) {
  return call("/v1/explain", { method: "POST", payload: { text, scheme }, signal, onWait });
}

export function classifyDocument(text, scheme, { signal, onWait } = {}) {
  return call("/v1/documents", { method: "POST", payload: { text, scheme }, signal, onWait });
}

// Splits texts into requests the server accepts: at most `perRequest` texts and about half the body
// limit each. A text over the character limit is not sent (it would be refused anyway): it gets an error here.
export function planChunks(texts, limits, perRequest = 32) {
  const maxTexts = Math.min(perRequest, limits.max_texts_per_request);
  const maxBytes = Math.floor(limits.max_body_bytes / 2);
  const encoder = new TextEncoder();
  const chunks = [];
  const tooLong = [];
  let current = [];
  let bytes = 0;
  texts.forEach((text, index) => {
    if (text.length > limits.max_text_chars && [...text].length > limits.max_text_chars) {
      tooLong.push(index);
      return;
    }
    const size = encoder.encode(JSON.stringify(text)).length + 1;
    if (current.length && (current.length >= maxTexts || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += size;
  });
  if (current.length) chunks.push(current);
  return { chunks, tooLong };
}
