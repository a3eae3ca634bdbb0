// Runs the add-in's real functions.js (excel/addin/functions.js) in Node with a STAND-IN for Excel's
// custom-functions runtime (CustomFunctions.associate, the page's location): Excel cannot run here.
// The functions call the real server through Node's fetch, counted per phase.
//
//   node run_addin_functions.mjs FUNCTIONS_JS SERVER_URL < phases.json > results.json
//
// phases.json: [[{"fn": "FINSENT", "args": [...]}, ...], ...]; the calls of one phase are made in the
// same tick (as Excel does in one recalculation), phases one after the other. {"helper": "countWords",
// "args": [...]} calls one of functions.js's own helpers (root.FinSentFunctions) instead. Prints, per
// phase, {"results": [...], "requests": N, "paths": {"POST /v1/explain": N, ...}, "bodies": [...]}
// (bodies: the JSON sent to /v1/explain, to check how the texts were cut into requests).

import { readFileSync } from "node:fs";
import vm from "node:vm";

const [functionsJs, serverUrl] = process.argv.slice(2);
const phases = JSON.parse(readFileSync(0, "utf8"));

let requests = 0;
let paths = {};
let bodies = [];
const associated = {};
const context = vm.createContext({
  fetch: (url, options) => {
    requests += 1;
    const key = `${options.method} ${new URL(url).pathname}`;
    paths[key] = (paths[key] || 0) + 1;
    if (key === "POST /v1/explain") bodies.push(JSON.parse(options.body));
    return fetch(url, options);
  },
  setTimeout, clearTimeout, AbortController, console, JSON, Promise, Map, Set, Array, Object, String, Number,
  location: new URL(serverUrl),
  CustomFunctions: { associate: (id, fn) => { associated[id] = fn; } }, // STAND-IN for Excel's runtime
});
vm.runInContext(readFileSync(functionsJs, "utf8"), context, { filename: functionsJs });

const out = { associated: Object.keys(associated), phases: [] };
for (const calls of phases) {
  requests = 0;
  paths = {};
  bodies = [];
  const results = await Promise.all(calls.map(({ fn, helper, args }) =>
    (helper ? context.FinSentFunctions[helper](...args) : associated[fn](...args))));
  out.phases.push({ results, requests, paths, bodies });
}
process.stdout.write(JSON.stringify(out));
