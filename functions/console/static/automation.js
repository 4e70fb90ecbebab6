// Rules, templates and journeys: the lists, and each one's definition as the API stores it. A
// marketer edits a copy with validation as they type (the validate routes), dry-runs a rule
// against a person, previews a template for a person; a journey is drawn as a graph with the
// number of people who reached each step.
import { api } from "./api.js";
import { h, show, shown, when } from "./dom.js";
import { t } from "./i18n.js";
import { act, allowed, failure, issues, jsonEditor, link, load, panel, pretty, ref, row, svg, table } from "./kit.js";

export async function render(view, { identity, args, locale }) {
  const [kind, id] = args;
  if (kind === "rule" && id) return rule(view, identity, id, locale);
  if (kind === "template" && id) return template(view, identity, id, locale);
  if (kind === "journey" && id) return journey(view, identity, id, locale);
  const [rules, templates, journeys] = [h("div", {}), h("div", {}), h("div", {})];
  show(view, h("h1", {}, t("automation.title")), panel("rules", t("automation.rules"), rules), panel("templates", t("automation.templates"), templates), panel("journeys", t("automation.journeys"), journeys));
  await Promise.all([
    load(rules, "/v1/rules", (a) =>
      table([t("automation.name"), t("automation.trigger"), t("automation.enabled"), t("automation.version")], (a.rules ?? []).map((r) => row(link(`#/automation/rule/${ref(r.id)}`, r.name || r.id), `${r.trigger?.type}: ${r.trigger?.event ?? r.trigger?.segment ?? r.trigger?.trait ?? r.trigger?.tag ?? ""}`, t(r.enabled ? "yes" : "no"), `v${r.version}`)), { "data-list": "rules" }),
    ),
    load(templates, "/v1/templates", (a) =>
      table([t("automation.name"), t("automation.channel"), t("automation.version"), t("automation.approved")], (a.templates ?? []).map((x) => row(link(`#/automation/template/${ref(x.id)}`, x.name || x.id), x.channel, `v${x.latestVersion}`, x.approvedVersion ? `v${x.approvedVersion}` : t("no"))), { "data-list": "templates" }),
    ),
    load(journeys, "/v1/journeys", (a) =>
      table([t("automation.name"), t("automation.entry"), t("automation.steps"), t("automation.enabled"), t("automation.updated")], (a.journeys ?? []).map((j) => row(link(`#/automation/journey/${ref(j.id)}`, j.name || j.id), `${j.entry?.type}: ${j.entry?.event ?? j.entry?.segment ?? j.entry?.trait ?? ""}`, shown(j.steps, locale), t(j.enabled ? "yes" : "no"), when(j.updated_at, locale))), { "data-list": "journeys" }),
    ),
  ]);
}

const back = () => h("p", {}, link("#/automation", t("automation.back")));
const storedOnly = (value) => {
  const { id, version, created_at, updated_at, updated_by, ...body } = value;
  return body;
};
const validator = (path) => async (value) => issues(await api("POST", path, value));

async function rule(view, identity, id, locale) {
  let saved;
  try {
    saved = await api("GET", `/v1/rules/${ref(id)}`);
  } catch (error) {
    return show(view, h("h1", {}, t("automation.rule", { id })), back(), failure(error));
  }
  const marketer = allowed(identity, "marketer");
  const editor = jsonEditor("rule-json", t("automation.definition"), storedOnly(saved), marketer ? validator("/v1/rules/validate") : null, { readonly: !marketer, rows: 16 });
  const parts = [h("h1", {}, t("automation.rule", { id: saved.name || id })), back(), h("p", { class: "note" }, t("automation.saved", { version: saved.version, when: when(saved.updated_at, locale) })), panel("definition", t("automation.definition.title"), editor)];
  if (marketer) {
    const person = h("input", { id: "dry-person", name: "dry-person", autocomplete: "off", placeholder: "user_id:ann" });
    const event = jsonEditor("dry-event", t("automation.event"), { event: saved.trigger?.event ?? "Order Completed", properties: {} }, null, { rows: 5 });
    const said = h("div", { class: "said", "aria-live": "polite", "data-dry-run": "" });
    const run = async () => {
      const answer = await api("POST", `/v1/rules/${ref(id)}/dry-run`, { profile: person.value.trim(), event: event.value(), rule: editor.value() });
      show(said, h("p", { class: answer.wouldFire ? "ok" : "notice", "data-fires": String(answer.wouldFire) }, t(answer.wouldFire ? "automation.fires" : "automation.nofire", { verdict: answer.verdict ?? "" })), h("pre", { class: "code" }, pretty({ trigger: answer.trigger, conditions: answer.conditions, refire: answer.refire })));
    };
    parts.push(panel("dry-run", t("automation.dryrun"), h("label", { for: "dry-person" }, t("automation.person")), person, event, act(t("automation.dryrun"), run, said), said));
  }
  show(view, ...parts);
  if (marketer) await editor.run();
}

async function template(view, identity, id, locale) {
  let saved;
  try {
    saved = await api("GET", `/v1/templates/${ref(id)}`);
  } catch (error) {
    return show(view, h("h1", {}, t("automation.template", { id })), back(), failure(error));
  }
  const latest = saved.latest ?? {};
  const parts = [
    h("h1", {}, t("automation.template", { id: latest.name || id })),
    back(),
    h("p", { class: "note" }, t("automation.template.state", { version: latest.version, status: latest.status, approved: saved.approved ? `v${saved.approved.version}` : t("no") })),
    panel("definition", t("automation.definition.title"), h("pre", { class: "code", tabindex: "0" }, pretty(latest.locales ?? {}))),
  ];
  if (allowed(identity, "marketer")) {
    const person = h("input", { id: "preview-person", name: "preview-person", autocomplete: "off", placeholder: "user_id:ann" });
    const said = h("div", { class: "said", "aria-live": "polite", "data-preview": "" });
    const preview = async () => {
      const body = person.value.trim() ? { profile: person.value.trim() } : { vars: {} };
      const answer = await api("POST", `/v1/templates/${ref(id)}/preview`, body);
      show(said, h("pre", { class: "code" }, pretty(answer)));
    };
    parts.push(panel("preview", t("automation.preview"), h("label", { for: "preview-person" }, t("automation.person")), person, act(t("automation.preview"), preview, said), said));
  }
  const versions = h("div", {});
  parts.push(panel("versions", t("automation.versions"), versions));
  show(view, ...parts);
  await load(versions, `/v1/templates/${ref(id)}/versions`, (a) =>
    table([t("automation.version"), t("automation.status"), t("automation.updated")], (a.versions ?? []).map((v) => row(`v${v.version}`, v.status, when(v.created_at, locale)))),
  );
}

async function journey(view, identity, id, locale) {
  let saved;
  let stats = null;
  try {
    saved = await api("GET", `/v1/journeys/${ref(id)}`);
    stats = await api("GET", `/v1/journeys/${ref(id)}/stats`).catch(() => null);
  } catch (error) {
    return show(view, h("h1", {}, t("automation.journey", { id })), back(), failure(error));
  }
  const marketer = allowed(identity, "marketer");
  const editor = jsonEditor("journey-json", t("automation.definition"), storedOnly(saved), marketer ? validator("/v1/journeys/validate") : null, { readonly: !marketer, rows: 16 });
  show(
    view,
    h("h1", {}, t("automation.journey", { id: saved.name || id })),
    back(),
    h("p", { class: "note" }, t("automation.saved", { version: saved.version, when: when(saved.updated_at, locale) })),
    stats ? h("p", { "data-journey-stats": "" }, t("automation.journey.stats", { entered: shown(stats.entered, locale), progress: shown(stats.in_progress, locale), completed: shown(stats.completed, locale) })) : null,
    panel("graph", t("automation.graph"), graph(saved, stats?.steps ?? {}, locale)),
    panel("definition", t("automation.definition.title"), editor),
  );
  if (marketer) await editor.run();
}

// Where a step can lead: `next`, `yes` / `no`, a wait's `on_event` / `on_timeout`, each branch's `next`.
function exits(step) {
  const found = [];
  for (const key of ["next", "yes", "no", "on_event", "on_timeout"]) if (typeof step[key] === "string") found.push([key, step[key]]);
  for (const [i, branch] of (step.branches ?? []).entries()) if (branch?.next) found.push([`${branch.percent ?? i} %`, branch.next]);
  return found;
}

// Steps in columns by their distance from the start; one box per step with its type and the
// number of people who reached it, arrows for every exit.
function graph(journey, counts, locale) {
  const steps = journey.steps ?? {};
  const depth = { [journey.start]: 0 };
  const queue = [journey.start];
  while (queue.length) {
    const name = queue.shift();
    for (const [, target] of exits(steps[name] ?? {})) if (steps[target] && !(target in depth)) (depth[target] = depth[name] + 1), queue.push(target);
  }
  for (const name of Object.keys(steps)) if (!(name in depth)) depth[name] = Math.max(0, ...Object.values(depth)) + 1;
  const columns = [];
  for (const [name, d] of Object.entries(depth)) (columns[d] ??= []).push(name);
  const place = {};
  columns.forEach((names, c) => names.forEach((name, r) => (place[name] = { x: 10 + c * 190, y: 10 + r * 90 })));
  const width = 20 + columns.length * 190;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * 90;
  // Exits to the same step are one arrow with their labels joined ("yes / no").
  const joined = (step) => {
    const byTarget = new Map();
    for (const [label, target] of exits(step)) if (place[target]) byTarget.set(target, [...(byTarget.get(target) ?? []), label]);
    return [...byTarget].map(([target, labels]) => [labels.filter((l) => l !== "next").join(" / "), target]);
  };
  const edges = Object.entries(steps).flatMap(([name, step]) =>
    joined(step)
      .map(([label, target]) => {
        const a = place[name];
        const b = place[target];
        return svg("g", { class: "edge" }, svg("line", { x1: a.x + 150, y1: a.y + 30, x2: b.x, y2: b.y + 30, "marker-end": "url(#arrow)" }), svg("text", { x: (a.x + 150 + b.x) / 2, y: (a.y + b.y) / 2 + 24, class: "value" }, label));
      }),
  );
  const boxes = Object.entries(steps).map(([name, step]) =>
    svg(
      "g",
      { class: "step", "data-step": name, transform: `translate(${place[name].x} ${place[name].y})` },
      svg("rect", { width: 150, height: 60, rx: 6 }),
      svg("text", { x: 8, y: 20, class: "label" }, name),
      svg("text", { x: 8, y: 38, class: "value" }, step.type + (step.duration ? ` ${step.duration}` : "")),
      svg("text", { x: 8, y: 54, class: "value" }, t("automation.reached", { count: shown(counts[name] ?? 0, locale) })),
    ),
  );
  return h(
    "div",
    { class: "canvas" },
    svg(
      "svg",
      { class: "graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": t("automation.graph.label", { count: Object.keys(steps).length }) },
      svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z" }))),
      edges,
      boxes,
    ),
  );
}
