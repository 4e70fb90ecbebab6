// Experiments: the list, and one experiment's results: its arms and units, the sample-ratio
// check (SRM), and for each metric what each engine (Bayesian, frequentist, sequential) answers,
// with the uplift and its interval drawn per arm.
import { h, show, shown, when } from "./dom.js";
import { t } from "./i18n.js";
import { intervals, link, load, panel, percent, ref, row, table } from "./kit.js";

const ENGINES = ["bayesian", "frequentist", "sequential"];

export async function render(view, { args, locale }) {
  if (args[0]) return experiment(view, args[0], locale);
  const list = h("div", {});
  show(view, h("h1", {}, t("experiments.title")), list);
  await load(list, "/v1/experiments", (answer) =>
    table(
      [t("experiments.name"), t("experiments.status"), t("experiments.target"), t("experiments.goal"), t("experiments.updated")],
      (answer.experiments ?? []).map((e) => row(link(`#/experiments/${ref(e.id)}`, e.name || e.id), e.status, `${e.target?.kind ?? ""} ${e.target?.id ?? ""}`.trim(), e.goal, when(e.updated_at, locale))),
      { "data-list": "experiments" },
    ),
  );
}

async function experiment(view, id, locale) {
  const results = h("div", {});
  show(view, h("h1", {}, t("experiments.one", { id })), h("p", {}, link("#/experiments", t("experiments.back"))), results);
  await load(results, `/v1/experiments/${ref(id)}/results`, (answer) => drawResults(answer, locale));
}

function drawResults(answer, locale) {
  const srm = answer.srm ?? {};
  return h(
    "div",
    {},
    h("p", { class: "note" }, t("experiments.computed", { phase: answer.phase, at: when(answer.computed_at, locale), goal: answer.goal ?? "—" })),
    panel(
      "arms",
      t("experiments.arms"),
      table(
        [t("experiments.arm"), t("experiments.weight"), t("experiments.units"), t("experiments.expected")],
        (answer.arms ?? []).map((a) => row(a.holdout ? `${a.id} (${t("experiments.holdout")})` : a.id, `${a.weight} %`, shown(a.units, locale), shown(srm.expected?.[a.id], locale))),
        { "data-arms": "" },
      ),
      h("p", { class: srm.alert ? "notice" : "ok", "data-srm": srm.alert ? "alert" : "ok" }, t(srm.alert ? "experiments.srm.alert" : "experiments.srm.ok", { p: shown(srm.p_value, locale), reason: srm.reason ?? "" })),
    ),
    (answer.metrics ?? []).map((metric) => drawMetric(metric, locale)),
    answer.days_to_decision ? h("p", { class: "note" }, t("experiments.days", { days: shown(answer.days_to_decision.days, locale), engine: answer.days_to_decision.engine })) : null,
  );
}

function drawMetric(metric, locale) {
  const points = ENGINES.flatMap((engine) => (metric[engine] ?? []).filter((v) => !v.error && v.ci).map((v) => ({ label: `${v.id} · ${t(`engine.${engine}`)}`, value: v.expected, ci: v.ci })));
  const rows = ENGINES.flatMap((engine) =>
    (metric[engine] ?? []).map((v) =>
      row(
        t(`engine.${engine}`),
        v.id,
        v.error ? v.error_message || v.error : percent(v.expected, locale),
        v.ci ? `${percent(v.ci[0], locale)} … ${percent(v.ci[1], locale)}` : "—",
        engine === "bayesian" ? t("experiments.chance", { value: percent(v.chance_to_win, locale) }) : t("experiments.p", { value: shown(v.p_value_adjusted ?? v.p_value, locale) }),
      ),
    ),
  );
  const title = t("experiments.metric", { metric: metric.name || metric.metric, kind: metric.kind });
  return panel(
    `metric-${metric.metric}`,
    metric.guardrail ? `${title} · ${t("experiments.guardrail")}` : title,
    table([t("experiments.arm"), t("experiments.units"), t("experiments.mean")], (metric.arms ?? []).map((a) => row(a.id, shown(a.n, locale), shown(a.mean, locale)))),
    points.length ? intervals(t("experiments.chart", { metric: metric.metric }), points, (v) => percent(v, locale)) : null,
    table([t("experiments.engine"), t("experiments.arm"), t("experiments.uplift"), t("experiments.interval"), t("experiments.answer")], rows, { "data-engines": metric.metric }),
  );
}
