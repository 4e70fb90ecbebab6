// Campaigns: the list, and one campaign with its live stats (every run's counters, messages
// blocked by guard reason, the variants it splits into) and pause / resume / cancel for marketers.
import { api } from "./api.js";
import { h, show, shown, when } from "./dom.js";
import { t, word } from "./i18n.js";
import { act, allowed, bars, failure, link, load, panel, percent, ref, row, table } from "./kit.js";

const FUNNEL = ["targeted", "held_out", "queued", "sent", "delivered", "opened", "clicked", "converted", "failed", "cancelled", "deferred"];
const CONTROLS = { pause: ["scheduled", "running"], resume: ["paused"], cancel: ["scheduled", "running", "paused"] };

export async function render(view, { identity, args, locale }) {
  if (args[0]) return campaign(view, identity, args[0], locale);
  const list = h("div", {});
  show(view, h("h1", {}, t("campaigns.title")), list);
  await load(list, "/v1/campaigns", (answer) =>
    table(
      [t("campaigns.name"), t("campaigns.status"), t("campaigns.schedule"), t("campaigns.audience")],
      (answer.campaigns ?? []).map((c) => row(link(`#/campaigns/${ref(c.id)}`, c.name || c.id), word("status", c.status), schedule(c.schedule, locale), (c.audience?.segments ?? []).join(", "))),
      { "data-list": "campaigns" },
    ),
  );
}

function schedule(value, locale) {
  if (!value) return "—";
  if (value.type === "once") return when(value.at, locale);
  return value.expression ? `${value.type}: ${value.expression}` : value.type;
}

async function campaign(view, identity, id, locale) {
  const head = h("div", {});
  const stats = h("div", {});
  const said = h("div", { class: "said", "aria-live": "polite" });
  show(view, h("h1", {}, t("campaigns.one", { id })), h("p", {}, link("#/campaigns", t("campaigns.back"))), head, said, stats);
  const refresh = async () => {
    let answer;
    try {
      answer = await api("GET", `/v1/campaigns/${ref(id)}`);
    } catch (error) {
      show(head, failure(error));
      return;
    }
    const control = (name) =>
      act(t(`campaigns.${name}`), async () => {
        await api("POST", `/v1/campaigns/${ref(id)}/${name}`);
        show(said, h("p", { class: "ok" }, t("campaigns.done", { action: t(`campaigns.${name}`) })));
        await refresh();
      }, said, { "data-control": name });
    const buttons = allowed(identity, "marketer") ? Object.keys(CONTROLS).filter((name) => CONTROLS[name].includes(answer.status)).map(control) : [];
    show(
      head,
      panel(
        "campaign",
        answer.name || id,
        h("dl", { class: "facts" }, fact(t("campaigns.status"), h("span", { "data-status": answer.status }, word("status", answer.status))), fact(t("campaigns.schedule"), schedule(answer.schedule, locale)), fact(t("campaigns.audience"), (answer.audience?.segments ?? []).join(", ")), fact(t("campaigns.channels"), (answer.message?.channels ?? []).join(", ")), fact(t("campaigns.holdout"), `${answer.holdout_percent ?? 0} %`)),
        answer.variants ? table([t("campaigns.variant"), t("campaigns.share")], answer.variants.map((v) => row(v.id, `${v.percent} %`)), { "data-variants": "" }) : null,
        h("div", { class: "row" }, buttons, act(t("campaigns.refresh"), refresh, said, { class: "secondary" })),
      ),
    );
    await load(stats, `/v1/campaigns/${ref(id)}/stats`, (s) => drawStats(s, locale));
  };
  await refresh();
}

const fact = (name, value) => [h("dt", {}, name), h("dd", {}, value || "—")];

function drawStats(answer, locale) {
  const totals = answer.totals ?? {};
  const blocked = Object.entries(totals.blocked ?? {});
  return h(
    "div",
    {},
    panel(
      "stats",
      t("campaigns.stats"),
      bars(t("campaigns.stats"), FUNNEL.map((name) => ({ label: word("counter", name), value: totals[name] ?? 0 })), (v) => shown(v, locale)),
      table([t("campaigns.counter"), t("campaigns.count")], FUNNEL.map((name) => row(word("counter", name), shown(totals[name] ?? 0, locale))), { "data-totals": "" }),
      h("p", {}, t("campaigns.conversion", { rate: percent(totals.conversion_rate, locale), revenue: totals.revenue ?? "0", lift: percent(totals.lift, locale) })),
    ),
    panel(
      "blocked",
      t("campaigns.blocked"),
      table([t("campaigns.reason"), t("campaigns.count")], blocked.map(([reason, count]) => row(word("reason", reason), shown(count, locale))), { "data-blocked": "" }),
    ),
    panel(
      "runs",
      t("campaigns.runs"),
      table(
        [t("campaigns.run"), t("campaigns.started"), t("campaigns.parts"), t("campaigns.sent"), t("campaigns.delivered")],
        (answer.runs ?? []).map((r) => row(r.run_id, when(r.started_at, locale), `${r.parts_done} / ${r.parts}`, shown(r.stats?.sent ?? 0, locale), shown(r.stats?.delivered ?? 0, locale))),
      ),
    ),
  );
}
