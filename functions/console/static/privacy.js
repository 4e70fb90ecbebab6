// Privacy requests (data operators): every request with its status and due date, the overdue
// ones first in the reader's eye, and one request's report per store.
import { h, show, shown, when } from "./dom.js";
import { t } from "./i18n.js";
import { link, load, panel, ref, row, table } from "./kit.js";

export async function render(view, { args, locale }) {
  if (args[0]) return request(view, args[0], locale);
  const list = h("div", {});
  const overdue = h("input", { id: "overdue", type: "checkbox" });
  const refresh = () => load(list, `/v1/regulations?limit=100${overdue.checked ? "&overdue=true" : ""}`, (answer) => draw(answer, locale));
  overdue.addEventListener("change", refresh);
  show(view, h("h1", {}, t("privacy.title")), h("p", { class: "check" }, overdue, h("label", { for: "overdue" }, t("privacy.overdue"))), list);
  await refresh();
}

function draw(answer, locale) {
  return table(
    [t("privacy.request"), t("privacy.type"), t("privacy.status"), t("privacy.received"), t("privacy.due")],
    (answer.regulations ?? []).map((r) =>
      row(
        link(`#/privacy/${ref(r.regulateId)}`, r.regulateId),
        `${r.regulationType} · ${r.subjectType} × ${r.subjectCount}`,
        r.status,
        when(r.receivedAt, locale),
        h("td", { class: r.overdue ? "late" : "" }, r.overdue ? t("privacy.late", { due: when(r.dueAt, locale) }) : when(r.dueAt, locale)),
      ),
    ),
    { "data-list": "regulations" },
  );
}

async function request(view, id, locale) {
  const body = h("div", {});
  show(view, h("h1", {}, t("privacy.one")), h("p", {}, link("#/privacy", t("privacy.back"))), body);
  await load(body, `/v1/regulations/${ref(id)}`, (r) =>
    panel(
      "request",
      r.regulateId,
      h("dl", { class: "facts" }, [
        [t("privacy.type"), `${r.regulationType} (${r.jurisdiction})`],
        [t("privacy.status"), r.status],
        [t("privacy.received"), when(r.receivedAt, locale)],
        [t("privacy.due"), when(r.dueAt, locale)],
        [t("privacy.finished"), r.finishedAt ? when(r.finishedAt, locale) : "—"],
        [t("privacy.dropped"), shown(r.droppedEvents, locale)],
      ].map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
      h("h3", {}, t("privacy.report")),
      table([t("privacy.store"), t("privacy.status"), t("privacy.details")], (r.report ?? []).map(({ store, state, ...rest }) => row(store, state, shown(rest, locale)))),
      r.export ? h("p", {}, t("privacy.files", { count: r.export.files?.length ?? 0, until: when(r.export.expiresAt, locale) })) : null,
    ),
  );
}
