// The audit log (admins): who did what, newest first, filtered by actor, action or kind, a page
// of 50 at a time.
import { api } from "./api.js";
import { h, show, when } from "./dom.js";
import { t } from "./i18n.js";
import { failure, row, table } from "./kit.js";

export async function render(view, { locale }) {
  const fields = ["actor", "action", "kind"].map((name) => [name, h("input", { id: `audit-${name}`, name, autocomplete: "off" })]);
  const list = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t("audit.more"));
  let cursor = null;
  const query = () => {
    const params = new URLSearchParams({ limit: "50" });
    for (const [name, input] of fields) if (input.value.trim()) params.set(name, input.value.trim());
    if (cursor) params.set("cursor", cursor);
    return params.toString();
  };
  const fetchPage = async (append) => {
    const asked = query();
    try {
      const answer = await api("GET", `/v1/audit?${asked}`);
      const rows = (answer.entries ?? []).map((e) => row(String(e.seq), when(e.at, locale), `${e.actor} (${e.role})`, e.kind, e.action, h("td", { class: "details" }, e.target ?? ""), String(e.status)));
      if (append && list.querySelector("tbody")) list.querySelector("tbody").append(...rows);
      else show(list, table([t("audit.seq"), t("audit.at"), t("audit.actor"), t("audit.kind"), t("audit.action"), t("audit.target"), t("audit.status")], rows, { "data-list": "audit", "data-query": asked }));
      cursor = answer.cursor;
      more.hidden = !cursor;
    } catch (error) {
      show(list, failure(error));
    }
  };
  const search = (event) => {
    event.preventDefault();
    cursor = null;
    fetchPage(false);
  };
  more.addEventListener("click", () => fetchPage(true));
  show(
    view,
    h("h1", {}, t("audit.title")),
    h("form", { class: "card filters", onsubmit: search }, fields.map(([name, input]) => h("span", {}, h("label", { for: input.id }, t(`audit.${name}`)), input)), h("button", { type: "submit" }, t("audit.filter"))),
    list,
    more,
  );
  await fetchPage(false);
}
