// .xlsx read in the page: the zip container (central directory, stored or deflated entries through the
// browser's DecompressionStream), the workbook's sheet list, shared strings and one sheet's cells as rows.
// Only cell values are read (a formula's last saved value); styles, dates and charts are ignored.

const MAX_ENTRY_BYTES = 256 * 1024 * 1024; // an entry claiming more is refused (a zip bomb or not a workbook)

export class XlsxError extends Error {}

function readZipDirectory(buffer) {
  const view = new DataView(buffer);
  const lowest = Math.max(0, buffer.byteLength - 65557);
  let end = -1;
  for (let i = buffer.byteLength - 22; i >= lowest; i--) {
    if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) throw new XlsxError("this is not an .xlsx file (no zip directory found)");
  const count = view.getUint16(end + 10, true);
  let offset = view.getUint32(end + 16, true);
  if (offset === 0xffffffff) throw new XlsxError("this workbook is too large to read in the page (zip64)");
  const entries = new Map();
  const decoder = new TextDecoder();
  for (let k = 0; k < count; k++) {
    if (offset + 46 > buffer.byteLength || view.getUint32(offset, true) !== 0x02014b50) {
      throw new XlsxError("the workbook's zip directory is damaged");
    }
    const method = view.getUint16(offset + 10, true);
    const compressedSize = view.getUint32(offset + 20, true);
    const size = view.getUint32(offset + 24, true);
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    const localOffset = view.getUint32(offset + 42, true);
    const name = decoder.decode(new Uint8Array(buffer, offset + 46, nameLength));
    entries.set(name, { method, compressedSize, size, localOffset });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function inflate(bytes, expectedSize) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  const reader = stream.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > Math.max(expectedSize, 0) + 1024 || total > MAX_ENTRY_BYTES) {
      await reader.cancel();
      throw new XlsxError("the workbook's contents are larger than they claim (refused)");
    }
    parts.push(value);
  }
  return new Blob(parts).arrayBuffer();
}

async function readEntry(buffer, entries, name) {
  const entry = entries.get(name);
  if (!entry) return null;
  if (entry.size > MAX_ENTRY_BYTES) throw new XlsxError(`${name} is too large to read in the page`);
  const view = new DataView(buffer);
  const at = entry.localOffset;
  if (at + 30 > buffer.byteLength || view.getUint32(at, true) !== 0x04034b50) {
    throw new XlsxError("the workbook's zip entries are damaged");
  }
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const bytes = new Uint8Array(buffer, start, Math.min(entry.compressedSize, buffer.byteLength - start));
  let data;
  if (entry.method === 0) data = bytes.slice().buffer;
  else if (entry.method === 8) data = await inflate(bytes, entry.size);
  else throw new XlsxError(`unsupported compression in ${name}`);
  return new TextDecoder().decode(data);
}

function parseXml(text, name) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) throw new XlsxError(`${name} in the workbook is not valid XML`);
  return doc;
}

// Elements by local name, whatever namespace prefix the writer used.
const byName = (node, name) => node.getElementsByTagNameNS("*", name);

function resolveTarget(target) {
  if (target.startsWith("/")) return target.slice(1);
  const parts = ["xl"];
  for (const part of target.split("/")) {
    if (part === "..") parts.pop();
    else if (part && part !== ".") parts.push(part);
  }
  return parts.join("/");
}

function sharedText(si) {
  // The text of a shared string: its <t> runs, without phonetic guides (<rPh>).
  let text = "";
  for (const t of byName(si, "t")) {
    if (t.parentNode.localName !== "rPh") text += t.textContent;
  }
  return text;
}

function columnIndex(ref) {
  let index = 0;
  for (const ch of ref) {
    const code = ch.charCodeAt(0);
    if (code < 65 || code > 90) break;
    index = index * 26 + (code - 64);
  }
  return index - 1;
}

export async function openWorkbook(buffer) {
  const entries = readZipDirectory(buffer);
  const workbookXml = await readEntry(buffer, entries, "xl/workbook.xml");
  if (workbookXml === null) throw new XlsxError("this zip file is not an Excel workbook (no xl/workbook.xml)");
  const rels = new Map();
  const relsXml = await readEntry(buffer, entries, "xl/_rels/workbook.xml.rels");
  if (relsXml !== null) {
    for (const rel of byName(parseXml(relsXml, "workbook.xml.rels"), "Relationship")) {
      rels.set(rel.getAttribute("Id"), resolveTarget(rel.getAttribute("Target") ?? ""));
    }
  }
  const sheets = [];
  for (const sheet of byName(parseXml(workbookXml, "workbook.xml"), "sheet")) {
    const id = [...sheet.attributes].find((a) => a.localName === "id")?.value;
    const path = rels.get(id);
    if (path && entries.has(path)) sheets.push({ name: sheet.getAttribute("name") ?? path, path });
  }
  if (!sheets.length) throw new XlsxError("the workbook has no worksheets");
  let shared = null;

  async function readSheet(sheet) {
    if (shared === null) {
      const sharedXml = await readEntry(buffer, entries, "xl/sharedStrings.xml");
      shared = sharedXml === null ? [] : [...byName(parseXml(sharedXml, "sharedStrings.xml"), "si")].map(sharedText);
    }
    const doc = parseXml(await readEntry(buffer, entries, sheet.path), sheet.path);
    const rows = [];
    for (const row of byName(doc, "row")) {
      const cells = [];
      let next = 0;
      for (const c of byName(row, "c")) {
        const ref = c.getAttribute("r");
        const col = ref ? columnIndex(ref) : next;
        next = col + 1;
        const type = c.getAttribute("t");
        const v = byName(c, "v")[0]?.textContent ?? "";
        let value;
        if (type === "s") value = shared[Number(v)] ?? "";
        else if (type === "inlineStr") value = [...byName(c, "t")].map((t) => t.textContent).join("");
        else if (type === "b") value = v === "1" ? "TRUE" : "FALSE";
        else value = v; // numbers, formula strings (t="str"), errors (t="e") as written
        cells[col] = value;
      }
      rows.push(Array.from(cells, (value) => value ?? ""));
    }
    return rows;
  }

  return { sheets, readSheet };
}
