// The label distribution as an SVG bar chart (drawn with DOM calls: no library, nothing inline), and
// the polarity class that colours a label everywhere on the page.

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
