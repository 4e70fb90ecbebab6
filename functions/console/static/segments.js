// Segments: the list, and one segment with its condition in a JSON editor whose estimate is
// computed live as it is typed (POST /v1/segments/estimate), a sample of its members, and a save
// for marketers. A new segment is the same page with an empty id (#/segments/new).
import { api, ApiError } from "./api.js";
import { h, show, shown, when } from "./dom.js";
import { t } from "./i18n.js";
import { act, allowed, failure, jsonEditor, link, load, panel, ref, row, table } from "./kit.js";

const EXAMPLE = { all: [{ path: "traits.plan", op: "eq", value: "pro" }] };

export async function render(view, { identity, args, locale }) {
  if (args[0]) return segment(view, identity, args[0], locale);
  const list = h("div", {});
  show(
    view,
    h("div", { class: "title" }, h("h1", {}, t("segments.title")), allowed(identity, "marketer") ? link("#/segments/new", t("segments.new")) : null),
    list,
  );
  await load(list, "/v1/segments", (answer) =>
    table(
      [t("segments.name"), t("segments.kind"), t("segments.condition"), t("segments.updated")],
      (answer.segments ?? []).map((s) => row(link(`#/segments/${ref(s.id)}`, s.name || s.id), t(`segments.kind.${s.kind}`), s.condition ? JSON.stringify(s.condition) : "—", when(s.updated_at, locale))),
      { "data-list": "segments" },
    ),
  );
}

async function segment(view, identity, id, locale) {
  const creating = id === "new";
  let saved = null;
  if (!creating) {
    try {
      saved = await api("GET", `/v1/segments/${ref(id)}`);
    } catch (error) {
      show(view, h("h1", {}, t("segments.title")), failure(error));
      return;
    }
  }
  const marketer = allowed(identity, "marketer");
  const estimate = h("div", { "data-panel": "estimate" });
  const said = h("div", { class: "said", "aria-live": "polite" });
  const check = async (condition) => {
    try {
      const answer = await api("POST", "/v1/segments/estimate", { condition });
      show(estimate, estimated(answer, locale));
      return h("p", { class: "ok" }, t("json.valid"));
    } catch (error) {
      show(estimate);
      return error instanceof ApiError && error.status === 400 ? h("p", { class: "message" }, error.message) : failure(error);
    }
  };
  const editor = jsonEditor("condition", t("segments.condition"), saved?.condition ?? EXAMPLE, marketer ? check : null, { readonly: !marketer });
  const idField = h("input", { id: "segment-id", name: "segment-id", value: creating ? "" : id, readonly: !creating, required: true });
  const nameField = h("input", { id: "segment-name", name: "segment-name", value: saved?.name ?? "" });
  const save = async () => {
    const body = { name: nameField.value.trim() || idField.value.trim(), condition: editor.value() };
    const answer = creating ? await api("POST", "/v1/segments", { id: idField.value.trim(), ...body }) : await api("PUT", `/v1/segments/${ref(id)}`, body);
    show(said, h("p", { class: "ok", "data-saved": answer.segment.version }, t("segments.saved", { version: answer.segment.version })));
    if (creating) location.hash = `#/segments/${ref(answer.segment.id)}`;
  };
  show(
    view,
    h("h1", {}, creating ? t("segments.new") : t("segments.one", { name: saved?.name || id })),
    h("p", {}, link("#/segments", t("segments.back"))),
    saved?.kind === "static" ? h("p", { class: "note" }, t("segments.static")) : null,
    panel(
      "definition",
      t("segments.definition"),
      h("div", { class: "fields" }, h("label", { for: "segment-id" }, t("segments.id")), idField, h("label", { for: "segment-name" }, t("segments.name")), nameField),
      editor,
      h("p", { class: "note" }, t("segments.help")),
      marketer ? act(t("segments.save"), save, said) : h("p", { class: "note", "data-readonly": "true" }, t("segments.readonly")),
      said,
    ),
    marketer ? panel("members", t("segments.members"), estimate) : h("p", { class: "note" }, t("segments.estimate.role")),
  );
  if (marketer && (saved?.condition || creating)) await editor.run();
}

function estimated(answer, locale) {
  const figure = answer.exact ? shown(answer.estimated, locale) : t("segments.range", { estimated: shown(answer.estimated, locale), low: shown(answer.low, locale), high: shown(answer.high, locale) });
  return h(
    "div",
    {},
    h("p", { class: "figure", "data-estimate": answer.estimated }, t("segments.estimate", { count: figure })),
    h("p", { class: "note" }, t("segments.scanned", { scanned: shown(answer.scanned, locale), matched: shown(answer.matched, locale) })),
    h("h3", {}, t("segments.sample")),
    table(
      [t("segments.profile"), t("segments.lifecycle")],
      (answer.sample ?? []).map((p) => row(link(`#/people/${ref(p.id)}`, p.id), p.lifecycle_stage ?? "—")),
    ),
  );
}
