// Runs the add-in's real freeze.js (excel/addin/freeze.js) in Node with a STAND-IN for Excel's
// JavaScript API (Excel.run, ranges with formulas and values, the selection, Excel 365's spill areas):
// Excel cannot run here. The stand-in answers as Excel does: a spilled cell other than its anchor has
// no formula of its own, writing values over a range replaces its formulas.
//
//   node run_addin_freeze.mjs FREEZE_JS < job.json > result.json
//
// job.json: {"sheet": {"A1": {"formula": "=...", "value": ...}, ...}, "spills": {"B1": "B1:B3"},
//            "steps": [{"scope": "selection", "address": "A1:C3"} | {"scope": "sheet"} | {"set": {"A2": value}}],
//            "formulas": ["=...", ...]}
// Prints {"messages": [...], "sheet": {...after the steps...}, "recognised": [true, false, ...]}.

import { readFileSync } from "node:fs";
import vm from "node:vm";

const [freezeJs] = process.argv.slice(2);
const job = JSON.parse(readFileSync(0, "utf8"));
const sheet = job.sheet; // address -> {formula, value}
const spills = job.spills || {};

const colName = (c) => { let s = ""; for (c += 1; c > 0; c = Math.floor((c - 1) / 26)) s = String.fromCharCode(65 + ((c - 1) % 26)) + s; return s; };
const colIndex = (name) => [...name].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0) - 1;
const cellAt = (r, c) => `${colName(c)}${r + 1}`;
function parse(address) {
  const [a, b = a] = address.split(":");
  const one = (x) => { const m = /^([A-Z]+)(\d+)$/.exec(x); return [Number(m[2]) - 1, colIndex(m[1])]; };
  const [r0, c0] = one(a);
  const [r1, c1] = one(b);
  return { r0, c0, r1, c1 };
}

class Range { // STAND-IN for Excel.Range
  constructor(address) { Object.assign(this, parse(address)); this.address = address; this.isNullObject = false; }
  load() {}
  cells(fn) {
    const out = [];
    for (let r = this.r0; r <= this.r1; r++) { const row = []; for (let c = this.c0; c <= this.c1; c++) row.push(fn(cellAt(r, c))); out.push(row); }
    return out;
  }
  get formulas() { return this.cells((a) => sheet[a]?.formula ?? sheet[a]?.value ?? ""); }
  get values() { return this.cells((a) => sheet[a]?.value ?? ""); }
  set values(rows) {
    rows.forEach((row, i) => row.forEach((v, j) => { sheet[cellAt(this.r0 + i, this.c0 + j)] = { value: v }; }));
    for (const anchor of Object.keys(spills)) if (!sheet[anchor]?.formula) delete spills[anchor];
  }
  getCell(i, j) { return new Range(cellAt(this.r0 + i, this.c0 + j)); }
  getSpillingToRangeOrNullObject() { return spills[this.address] ? new Range(spills[this.address]) : { isNullObject: true, load() {} }; }
}

let selection = "A1";
function usedAddress() {
  const used = Object.keys(sheet).map(parse);
  if (!used.length) return null;
  const r1 = Math.max(...used.map((u) => u.r0)), c1 = Math.max(...used.map((u) => u.c0));
  return `A1:${cellAt(r1, c1)}`;
}
const Excel = { // STAND-IN for Excel's JavaScript API
  run: async (batch) => batch({
    workbook: {
      getSelectedRange: () => new Range(selection),
      worksheets: { getActiveWorksheet: () => ({
        getUsedRangeOrNullObject: () => (usedAddress() ? new Range(usedAddress()) : { isNullObject: true, load() {} }),
      }) },
    },
    sync: async () => {},
  }),
};
const context = vm.createContext({ Excel, console, Promise, Date });
vm.runInContext(readFileSync(freezeJs, "utf8"), context, { filename: freezeJs });
const { freezeFormulas, isFinSentFormula } = context.FinSentFreeze;

const messages = [];
for (const step of job.steps || []) {
  if (step.set) { for (const [a, v] of Object.entries(step.set)) sheet[a] = { ...sheet[a], value: v }; continue; }
  if (step.address) selection = step.address;
  messages.push(await freezeFormulas(step.scope));
}
process.stdout.write(JSON.stringify({ messages, sheet, recognised: (job.formulas || []).map(isFinSentFormula) }));
