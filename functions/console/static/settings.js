// Sources (marketers and above) and admin API keys (admins): read-only lists. Write keys are
// what a site embeds, so they are shown; API key secrets never leave the API after creation.
import { h, show, when } from "./dom.js";
import { t } from "./i18n.js";
import { allowed, load, panel, row, table } from "./kit.js";

export async function render(view, { identity, locale }) {
  const sources = h("div", {});
  const keys = h("div", {});
  show(view, h("h1", {}, t("settings.title")), panel("sources", t("settings.sources"), sources), allowed(identity, "admin") ? panel("keys", t("settings.keys"), keys) : null);
  await Promise.all([
    load(sources, "/v1/sources", (answer) =>
      table(
        [t("settings.source"), t("settings.kind"), t("settings.writekey"), t("settings.enabled"), t("settings.created")],
        (answer.sources ?? []).map((s) => row(`${s.name} (${s.id})`, s.kind ?? "—", h("td", { class: "details" }, s.write_key), t(s.enabled ? "yes" : "no"), when(s.created_at, locale))),
        { "data-list": "sources" },
      ),
    ),
    allowed(identity, "admin")
      ? load(keys, "/v1/api-keys", (answer) =>
          table(
            [t("settings.key"), t("settings.role"), t("settings.revoked"), t("settings.created")],
            (answer.apiKeys ?? []).map((k) => row(`${k.name} (${k.id})`, t(`role.${k.role}`), t(k.revoked ? "yes" : "no"), when(k.created_at, locale))),
            { "data-list": "keys" },
          ),
        )
      : null,
  ]);
}
