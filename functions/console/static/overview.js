// Overview: this week's review against the previous one (people, activity, orders, revenue,
// messages by outcome) and the campaigns with their status.
import { api } from "./api.js";
import { h, show, shown } from "./dom.js";
import { t, word } from "./i18n.js";
import { explain, say } from "./ui.js";

const KPIS = ["people", "active", "new", "orders", "revenue"];
const OUTCOMES = ["sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "converted"];

const today = () => new Date().toISOString().slice(0, 10);

// `fresh`: the Refresh button asks the reports to be computed again rather than read from the
// API's short cache (Cache-Control: no-cache).
export async function render(view, { locale, fresh = false }) {
  const review = h("section", { "aria-labelledby": "review-title" }, h("p", {}, t("loading")));
  const campaigns = h("section", { "aria-labelledby": "campaigns-title" }, h("p", {}, t("loading")));
  show(
    view,
    h("div", { class: "title" }, h("h1", {}, t("overview.title")), h("button", { type: "button", onclick: () => render(view, { locale, fresh: true }) }, t("overview.refresh"))),
    review,
    campaigns,
  );
  await Promise.all([showReview(review, locale, fresh), showCampaigns(campaigns)]);
}

async function showReview(section, locale, fresh) {
  let answer;
  try {
    const again = fresh ? { "cache-control": "no-cache" } : {};
    answer = await api("POST", "/v1/reports/review", { of: today(), period: "week" }, undefined, again);
  } catch (error) {
    show(section, h("h2", { id: "review-title" }, t("overview.messages")), h("p", { class: "message" }, t("overview.unavailable", { message: explain(error) })));
    return;
  }
  const current = answer.summary?.current ?? {};
  const previous = answer.summary?.previous ?? {};
  const tiles = KPIS.map((name) =>
    h(
      "div",
      { class: "tile", "data-kpi": name },
      h("span", { class: "label" }, t(`overview.${name}`)),
      h("span", { class: "figure" }, shown(current[name] ?? 0, locale)),
      h("span", { class: "previous" }, t("overview.previous", { value: shown(previous[name] ?? 0, locale) })),
    ),
  );
  const largest = Math.max(1, ...OUTCOMES.map((name) => current[name] ?? 0));
  const rows = OUTCOMES.map((name) =>
    h(
      "tr",
      { "data-outcome": name },
      h("th", { scope: "row" }, t(`outcome.${name}`)),
      h("td", { class: "number" }, shown(current[name] ?? 0, locale)),
      // The bar repeats the number beside it, so it is hidden from screen readers.
      h("td", { class: "bar-cell", "aria-hidden": "true" }, h("span", { class: "bar", "data-share": Math.round((100 * (current[name] ?? 0)) / largest) })),
    ),
  );
  show(
    section,
    h("h2", { id: "review-title", class: "visually-hidden" }, t("overview.title")),
    h("p", {}, t("overview.week", { from: current.first_day ?? "", to: current.last_day ?? "" })),
    h("div", { class: "tiles" }, tiles),
    h("h2", {}, t("overview.messages")),
    h(
      "table",
      { class: "outcomes" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("overview.outcome")), h("th", { scope: "col" }, t("overview.count")), h("td", {}))),
      h("tbody", {}, rows),
    ),
    answer.freshness?.archived_until ? h("p", { class: "note" }, t("overview.freshness", { until: answer.freshness.archived_until })) : null,
  );
  // Bar widths through the CSSOM: the page's Content-Security-Policy allows no inline styles.
  for (const bar of section.querySelectorAll(".bar")) bar.style.width = `${bar.dataset.share}%`;
}

async function showCampaigns(section) {
  let answer;
  try {
    answer = await api("GET", "/v1/campaigns");
  } catch (error) {
    show(section, h("h2", { id: "campaigns-title" }, t("overview.campaigns")), h("p", { class: "message" }, explain(error)));
    say(explain(error));
    return;
  }
  const list = answer.campaigns ?? [];
  show(
    section,
    h("h2", { id: "campaigns-title" }, t("overview.campaigns")),
    list.length === 0
      ? h("p", {}, t("overview.campaigns.none"))
      : h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("overview.campaign")), h("th", { scope: "col" }, t("overview.status")))),
          h("tbody", {}, list.map((c) => h("tr", {}, h("td", {}, h("a", { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name ?? c.id)), h("td", {}, word("status", c.status))))),
        ),
  );
}
