// FinSent Local's "Freeze as values" for the Office add-in: replace the FinSent formulas in the selection
// (or the whole sheet) by the values they show, so the results stay when the server is not running, in
// a workbook mailed to a colleague, or on a machine without the add-in. Other formulas stay as they are.
// A formula that spills is replaced with its whole spill area. While a FinSent cell is still waiting
// for its result (#BUSY!), nothing is changed and the message says which cells.
//
// The same rules as excel/freeze.py (the xlwings macro and `finsent excel freeze`); tests check both
// recognise the same formulas. A plain script: the task pane (functions.html) loads it next to
// functions.js in the add-in's shared runtime.

(function (root) {
  "use strict";

  // =FINSENT, _SCORE, _PROBS, _DOC, _DOC_SCORE, with the add-in's LOCAL. namespace or the prefixes files
  // store them with, and the documented WEBSERVICE(".../v1/label?...") form.
  // (No lookbehind: Safari before 16.4, which older Excel for Mac uses, cannot parse it.)
  const FUNCTION_CALL = /(?:^|[^\w.])(?:LOCAL\.|_xludf\.|_xldudf_LOCAL_)?FINSENT(?:_SCORE|_PROBS|_DOC_SCORE|_DOC)?\s*\(/i;
  const WEBSERVICE_LABEL = /(?:^|[^\w.])(?:_xlfn\.)?WEBSERVICE\s*\(\s*"[^"]*\/v1\/label\?/i;
  const PENDING = ["#BUSY!", "#GETTING_DATA", "#N/A waiting"];

  function isFinSentFormula(formula) {
    if (typeof formula !== "string" || !formula.startsWith("=")) return false;
    return FUNCTION_CALL.test(formula) || WEBSERVICE_LABEL.test(formula);
  }

  const isPending = (value) => typeof value === "string" && PENDING.some((p) => value.trim().startsWith(p));

  // scope: "selection" or "sheet". Resolves to the message for the user.
  async function freezeFormulas(scope) {
    return root.Excel.run(async (context) => {
      const range = scope === "sheet"
        ? context.workbook.worksheets.getActiveWorksheet().getUsedRangeOrNullObject()
        : context.workbook.getSelectedRange();
      range.load(["formulas", "address"]);
      await context.sync();
      const where = scope === "sheet" ? "on this sheet" : "in the selection";
      if (range.isNullObject) return `No FinSent formulas ${where}.`;
      const cells = [];
      range.formulas.forEach((row, i) => row.forEach((formula, j) => {
        if (isFinSentFormula(formula)) cells.push(range.getCell(i, j));
      }));
      if (!cells.length) return `No FinSent formulas ${where}.`;
      const areas = cells.map((cell) => {
        const spill = cell.getSpillingToRangeOrNullObject();
        spill.load(["address", "values"]);
        cell.load(["address", "values"]);
        return { cell, spill };
      });
      await context.sync();
      const targets = areas.map(({ cell, spill }) => (spill.isNullObject ? cell : spill));
      const waiting = areas.filter((_, n) => targets[n].values.some((row) => row.some(isPending)))
        .map(({ cell }) => cell.address);
      if (waiting.length) {
        const cells = waiting.length === 1 ? "1 FinSent cell is still waiting for its result"
          : `${waiting.length} FinSent cells are still waiting for their results`;
        return `Nothing was frozen: ${cells} `
          + `(${waiting.slice(0, 3).join(", ")}${waiting.length > 3 ? ", ..." : ""}). `
          + `Try again when ${waiting.length === 1 ? "it has" : "they have"} filled in.`;
      }
      for (const target of targets) target.values = target.values; // values over the formula and its spill
      await context.sync();
      const formulas = targets.length === 1 ? "1 FinSent formula" : `${targets.length} FinSent formulas`;
      return `Froze ${formulas} ${where} into values.`;
    });
  }

  // The task pane's buttons (functions.html), when this runs in it. The whole sheet is asked first:
  // Office add-ins have no confirm(), so the first click arms the button and the second one freezes.
  function wireButtons(doc) {
    const say = (text) => { doc.getElementById("freeze-message").textContent = text; };
    let armedUntil = 0;
    for (const [id, scope] of [["freeze-selection", "selection"], ["freeze-sheet", "sheet"]]) {
      const button = doc.getElementById(id);
      if (!button) continue;
      button.addEventListener("click", async () => {
        if (scope === "sheet" && Date.now() > armedUntil) {
          armedUntil = Date.now() + 10000;
          say("Replace every FinSent formula on this sheet by its value? Click the button again to confirm.");
          return;
        }
        armedUntil = 0;
        say("Freezing…");
        try {
          say(await freezeFormulas(scope));
        } catch (error) {
          say(`Not frozen: ${error.message || error}`);
        }
      });
    }
  }

  if (root.document && root.document.getElementById) {
    if (root.document.readyState === "loading") root.document.addEventListener("DOMContentLoaded", () => wireButtons(root.document));
    else wireButtons(root.document);
  }
  root.FinSentFreeze = { freezeFormulas, isFinSentFormula, isPending };
})(typeof globalThis !== "undefined" ? globalThis : this);
