// Builds elements from data without ever parsing it as HTML: nothing the API returns can run.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function show(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

// A value as people read it: numbers grouped, objects as `name: value` lists.
export function shown(value, locale) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "number") return value.toLocaleString(locale, { maximumFractionDigits: 2 });
  if (Array.isArray(value)) return value.map((item) => shown(item, locale)).join(", ");
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([name, inner]) => `${name}: ${inner && typeof inner === "object" && !Array.isArray(inner) ? `{${shown(inner, locale)}}` : shown(inner, locale)}`)
      .join(", ");
  }
  return String(value);
}

export function when(stamp, locale) {
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? String(stamp ?? "—") : date.toLocaleString(locale, { dateStyle: "medium", timeStyle: "medium" });
}
