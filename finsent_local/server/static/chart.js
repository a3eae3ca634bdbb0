// The label distribution as an SVG bar chart (drawn with DOM calls: no library, nothing inline), and
// the polarity class that colours a label everywhere on the page; and a text's words shaded by their weight.

const SVG = "http://www.w3.org/2000/svg";

// -3 (strongest negative) .. +3 (strongest positive), from a label's value on the -1..1 scale.
export function polarityClass(value) {
  const step = Math.round(Number(value) * 3);
  return step === 0 ? "pol-0" : step < 0 ? `pol-n${-step}` : `pol-p${step}`;
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// The chart is drawn at the width it is shown at (up to 460 px), not scaled: on a phone a scaled-down
// chart would shrink its 12 px labels to 8 px. Narrow screens get a narrower label column and bars.
const MAX_WIDTH = 460;
const MIN_WIDTH = 260;

// counts: one number per label, in scale order.
export function drawDistribution(figure, labels, values, counts) {
  const total = counts.reduce((a, b) => a + b, 0);
  const rowHeight = 24;
  const width = Math.round(Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, figure.clientWidth || MAX_WIDTH)));
  const labelWidth = width < 400 ? 118 : 150;
  const barWidth = width - labelWidth - 90;
  const height = labels.length * rowHeight + 4;
  const max = Math.max(1, ...counts);
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "distribution" });
  const summary = labels.map((label, i) => `${label}: ${counts[i]}`).join(", ");
  svg.append(svgElement("title", {}, `Label distribution of ${total} texts. ${summary}`));
  labels.forEach((label, i) => {
    const y = i * rowHeight + 2;
    const share = total ? counts[i] / total : 0;
    const group = svgElement("g", { class: polarityClass(values[i]) });
    group.append(svgElement("text", { x: labelWidth - 8, y: y + rowHeight / 2 + 4, "text-anchor": "end", class: "axis" }, label));
    group.append(svgElement("rect", { x: labelWidth, y: y + 3, width: Math.max(counts[i] ? 2 : 0, (counts[i] / max) * barWidth),
                                      height: rowHeight - 6, rx: 3, class: "bar" }));
    group.append(svgElement("text", { x: labelWidth + barWidth + 8, y: y + rowHeight / 2 + 4, class: "value" },
                            `${counts[i]} (${(share * 100).toFixed(0)}%)`));
    svg.append(group);
  });
  const caption = document.createElement("figcaption");
  caption.textContent = "Labels";
  figure.replaceChildren(caption, svg);
}

// A text cut into plain runs and explained words, each word with its shade: `side` "neg" (the word
// pushed the score towards negative: red), "pos" (green) or "none", and `shade` 0..SHADE_MAX by |weight|
// relative to the text's strongest word. The scale never drops under SHADE_FLOOR, so a text whose words
// each moved the score by a hair stays faint instead of one of them turning deep red; a word under
// SHADE_ZERO (or a shade too faint to see) stays unshaded. The same rules as `finsent eval --report`.
// Offsets are the server's, Python string indices, i.e. code points: the text is indexed as
// Array.from(text), never by UTF-16 units (an emoji before a word would shift every word after it).
// Returns null when a word's offsets do not point at its own text (not this text's explanation).
export const SHADE_MAX = 0.7; // the strongest word's background opacity: its text stays readable
const SHADE_FLOOR = 0.05;
const SHADE_ZERO = 0.005;
const SHADE_VISIBLE = 0.03;

export function wordSegments(text, words) {
  const chars = Array.from(text);
  const sorted = [...words].sort((a, b) => a.start - b.start);
  const scale = Math.max(SHADE_FLOOR, ...sorted.map((w) => Math.abs(w.weight)));
  const segments = [];
  let at = 0;
  for (const word of sorted) {
    if (word.start < at) continue; // overlapping units (pairs of words): the first keeps its characters
    const piece = chars.slice(word.start, word.end).join("");
    if (piece !== word.text) return null;
    if (word.start > at) segments.push({ text: chars.slice(at, word.start).join("") });
    let shade = (SHADE_MAX * Math.abs(word.weight)) / scale;
    if (Math.abs(word.weight) < SHADE_ZERO || shade < SHADE_VISIBLE) shade = 0;
    segments.push({ text: piece, word, shade, side: shade === 0 ? "none" : word.weight < 0 ? "neg" : "pos" });
    at = word.end;
  }
  if (at < chars.length) segments.push({ text: chars.slice(at).join("") });
  return segments;
}

// The k words that moved the score most: largest |weight|, ties by |label_weight|, then the earlier
// word (as the server's `strongest`, so the page, the CLI and Excel name the same words).
export function strongestWords(words, k = 3) {
  return words.map((w, i) => [w, i])
    .sort(([a, i], [b, j]) => Math.abs(b.weight) - Math.abs(a.weight)
      || Math.abs(b.label_weight) - Math.abs(a.label_weight) || i - j)
    .slice(0, k).map(([w]) => w);
}
