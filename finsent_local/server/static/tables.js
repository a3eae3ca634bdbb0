// Files read in the page (nothing is uploaded but the chosen column's texts): text decoding, CSV/TSV
// parsing (RFC 4180: quoted fields, doubled quotes, newlines inside quotes), and the CSV download.

// UTF-8 (a BOM is dropped); a file that is not valid UTF-8 is read as Windows-1252, which is what
// Excel writes for "CSV" on Western-European Windows.
export function decodeText(buffer) {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(buffer), encoding: "UTF-8" };
  } catch {
    return { text: new TextDecoder("windows-1252").decode(buffer), encoding: "Windows-1252" };
  }
}

// The separator of a delimited file: tab for .tsv; otherwise whichever of , ; tab occurs most in the
// first line outside quotes (Excel in many European locales writes ";").
export function sniffDelimiter(text, fileName) {
  if (/\.(tsv|tab)$/i.test(fileName)) return "\t";
  const counts = { ",": 0, ";": 0, "\t": 0 };
  let quoted = false;
  for (const ch of text.slice(0, 65536)) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === "\n" || ch === "\r")) break;
    else if (!quoted && ch in counts) counts[ch]++;
  }
  const [best, count] = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];  // a tie keeps ","
  return count > 0 ? best : ",";
}

export function parseDelimited(text, delimiter) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += ch; i++; continue;
    }
    if (ch === '"' && field === "") { quoted = true; i++; continue; }
    if (ch === delimiter) { row.push(field); field = ""; i++; continue; }
    if (ch === "\r" || ch === "\n") {
      row.push(field); rows.push(row); row = []; field = "";
      i += ch === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += ch; i++;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

const isBlankRow = (row) => row.every((cell) => String(cell ?? "").trim() === "");

// A table from rows: the first non-blank row is the header; blank rows are left out, and counted
// (the page says how many). A row with cells but an empty text cell stays: it gets "text is empty".
export function tableFromRows(rows) {
  const kept = rows.filter((row) => !isBlankRow(row));
  const blankRows = rows.length - kept.length;
  const header = kept.shift() ?? [];
  const width = Math.max(header.length, ...kept.slice(0, 1000).map((r) => r.length), 0);
  const columns = Array.from({ length: width }, (_, i) => {
    const name = String(header[i] ?? "").trim();
    return name || `Column ${columnLetters(i)}`;
  });
  return { columns, rows: kept, blankRows };
}

// A .txt file: one text per line, in a column named "text" (as `finsent classify` writes it); blank
// lines are left out and counted (the newline that ends the last line makes no line).
export function tableFromLines(text) {
  const lines = text.split(/\r\n|\n|\r/);
  if (lines.at(-1) === "") lines.pop();
  const rows = lines.filter((line) => line.trim() !== "").map((line) => [line]);
  return { columns: ["text"], rows, blankRows: lines.length - rows.length };
}

export function columnLetters(index) {
  let name = "";
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) name = String.fromCharCode(65 + ((n - 1) % 26)) + name;
  return name;
}

// The column most likely to hold the texts: a telling name, else the one with the longest cells.
export function guessTextColumn(table) {
  const telling = /^(headline|headlines|title|text|sentence|news|summary|body|content|description)$/i;
  const named = table.columns.findIndex((c) => telling.test(c.trim()));
  if (named >= 0) return named;
  let best = 0;
  let bestLength = -1;
  table.columns.forEach((_, i) => {
    const sample = table.rows.slice(0, 200);
    const length = sample.reduce((sum, r) => sum + String(r[i] ?? "").length, 0);
    if (length > bestLength) { best = i; bestLength = length; }
  });
  return best;
}

export const linesOf = (text) => text.split(/\r\n|\n|\r/).filter((line) => line.trim() !== "");

// CSV for the download: RFC 4180 quoting, CRLF line ends, a UTF-8 BOM (so Excel reads UTF-8), and a
// leading apostrophe on text cells that a spreadsheet would run as a formula (= + - @, tab, CR) unless
// they are plain numbers: a headline such as "=HYPERLINK(...)" must stay text when the file is opened.
export function toCsv(rows) {
  const cell = (value) => {
    let text = value === null || value === undefined ? "" : String(value);
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text) && !/^[+-]?\d+(\.\d+)?%?$/.test(text)) {
      text = "'" + text;
    }
    return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return "\ufeff" + rows.map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}
