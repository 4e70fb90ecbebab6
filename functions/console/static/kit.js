// Pieces the pages share: tables, panels, JSON editors, role checks and a small SVG chart. Every
// value is put on the page as text; nothing the API returns is parsed as HTML.
import { api, atLeast } from "./api.js";
import { h, show } from "./dom.js";
import { t } from "./i18n.js";
import { explain } from "./ui.js";

export const ref = (value) => encodeURIComponent(value);

export function panel(name, title, ...body) {
  return h("section", { class: "card", "data-panel": name, "aria-labelledby": `panel-${name}` }, h("h2", { id: `panel-${name}` }, title), body);
}

// `head`: words already translated; `rows`: <tr> elements.
export function table(head, rows, attributes = {}) {
  if (rows.length === 0) return h("p", {}, t("people.none"));
  return h("table", attributes, h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col" }, name)))), h("tbody", {}, rows));
}

export const row = (...cells) => h("tr", {}, cells.map((cell) => (cell instanceof Node && cell.tagName === "TD" ? cell : h("td", {}, cell ?? "—"))));

export const failure = (error) => h("p", { class: "message", role: "alert" }, explain(error));

// Loads `path` and shows what `draw` makes of it in `place`, or the API's error in words.
export async function load(place, path, draw) {
  show(place, h("p", {}, t("loading")));
  try {
    const answer = await api("GET", path);
    show(place, draw(answer));
    return answer;
  } catch (error) {
    show(place, failure(error));
    return null;
  }
}

export const allowed = (identity, minimum) => atLeast(identity.role, minimum);

export function needsRole(minimum) {
  return h("p", { class: "notice", "data-forbidden": minimum }, t("page.forbidden", { role: t(`role.${minimum}`) }));
}

export function link(hash, text) {
  return h("a", { href: hash }, text);
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// A labelled JSON text area; `check(value)` runs on each change (debounced) once it parses.
export function jsonEditor(id, label, value, check, { readonly = false, rows = 12 } = {}) {
  const area = h("textarea", { id, name: id, rows, spellcheck: "false", class: "code", "aria-describedby": `${id}-said`, readonly });
  area.value = pretty(value);
  const said = h("div", { id: `${id}-said`, class: "said", "aria-live": "polite" });
  let timer = null;
  const run = async () => {
    let parsed;
    try {
      parsed = JSON.parse(area.value);
    } catch (error) {
      show(said, h("p", { class: "message" }, t("json.invalid", { message: error.message })));
      return;
    }
    if (check) show(said, await check(parsed));
  };
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 400);
  });
  const editor = h("div", { class: "editor" }, h("label", { for: id }, label), area, said);
  editor.run = run;
  editor.value = () => JSON.parse(area.value);
  return editor;
}

// What a validate route said: "valid", or each issue at its location.
export function issues(answer) {
  if (answer.valid) return h("p", { class: "ok", "data-valid": "true" }, t("json.valid"));
  return h("ul", { class: "issues", "data-valid": "false" }, answer.issues.map((issue) => h("li", {}, h("code", {}, issue.location || "/"), " ", issue.message)));
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) if (child) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

// Horizontal bars with their value written beside each; `title` names the chart for screen
// readers, which also get the table the page shows beside it.
export function bars(title, items, format = String) {
  const height = 26 * items.length + 8;
  const largest = Math.max(1e-9, ...items.map((item) => Math.abs(item.value)));
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 600 ${height}`, role: "img", "aria-label": title },
    svg("title", {}, title),
    items.map((item, i) =>
      svg(
        "g",
        { transform: `translate(0 ${4 + 26 * i})` },
        svg("text", { x: 0, y: 16, class: "label" }, item.label),
        svg("rect", { x: 170, y: 3, height: 18, width: Math.max(1, (330 * Math.abs(item.value)) / largest), class: item.warn ? "bar warn" : "bar" }),
        svg("text", { x: 505, y: 16, class: "value" }, format(item.value)),
      ),
    ),
  );
}

// Intervals around zero (an uplift and its confidence interval per arm and engine).
export function intervals(title, items, format) {
  const height = 28 * items.length + 30;
  const edge = Math.max(1e-9, ...items.flatMap((item) => item.ci.map(Math.abs)), ...items.map((item) => Math.abs(item.value)));
  const x = (v) => 300 + (150 * v) / edge;
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 600 ${height}`, role: "img", "aria-label": title },
    svg("title", {}, title),
    svg("line", { x1: 300, x2: 300, y1: 0, y2: height - 20, class: "axis" }),
    svg("text", { x: 300, y: height - 4, class: "value", "text-anchor": "middle" }, "0"),
    items.map((item, i) =>
      svg(
        "g",
        { transform: `translate(0 ${6 + 28 * i})` },
        svg("text", { x: 0, y: 14, class: "label" }, item.label),
        svg("line", { x1: x(item.ci[0]), x2: x(item.ci[1]), y1: 10, y2: 10, class: "interval" }),
        svg("circle", { cx: x(item.value), cy: 10, r: 5, class: item.value >= 0 ? "point" : "point warn" }),
        svg("text", { x: 480, y: 14, class: "value" }, format(item.value)),
      ),
    ),
  );
}

export const percent = (value, locale) => (value === null || value === undefined ? "—" : (value * 100).toLocaleString(locale, { maximumFractionDigits: 1 }) + " %");

// A button that runs `action`, says what happened in `said` and is disabled while it runs.
export function act(label, action, said, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      show(said, failure(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
