// People: find a person by any identifier, and their 360 view (traits, computed traits,
// identities, segments, tags, consents, timeline, messages, journeys, merges). Masking is the
// API's: below data_operator it answers contact data masked (`masked: true`), and the page says so.
import { api, ApiError, atLeast } from "./api.js";
import { h, show, shown, when } from "./dom.js";
import { t } from "./i18n.js";
import { explain, say } from "./ui.js";
import { act, failure } from "./kit.js";

const ref = (value) => encodeURIComponent(value);

export async function render(view, { identity, args, locale }) {
  const wanted = args.join("/");
  const input = h("input", { id: "ref", name: "ref", type: "search", value: wanted, autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "ref-hint" });
  const result = h("div", { id: "person" });
  show(
    view,
    h("h1", {}, t("people.title")),
    h(
      "form",
      { class: "card search", role: "search", onsubmit: (event) => find(event, input) },
      h("label", { for: "ref" }, t("people.find")),
      h("div", { class: "row" }, input, h("button", { type: "submit" }, t("people.search"))),
      h("p", { id: "ref-hint", class: "note" }, t("people.hint")),
    ),
    result,
  );
  if (!wanted) {
    input.focus();
    return;
  }
  await person(result, wanted, identity, locale);
}

function find(event, input) {
  event.preventDefault();
  const value = input.value.trim();
  if (value) location.hash = `#/people/${ref(value)}`;
}

async function person(result, wanted, identity, locale) {
  show(result, h("p", {}, t("loading")));
  let profile;
  try {
    profile = await api("GET", `/v1/profiles/${ref(wanted)}`);
  } catch (error) {
    const words = error instanceof ApiError && error.status === 404 ? t("people.notfound", { ref: wanted }) : error instanceof ApiError && error.status === 400 ? t("people.badref", { message: error.message }) : explain(error);
    show(result, h("p", { class: "message", role: "alert" }, words));
    return;
  }
  const id = profile.id;
  const [timeline, messages, journeys, consent] = await Promise.all([
    api("GET", `/v1/profiles/${ref(id)}/timeline?limit=50`).catch((error) => ({ error })),
    api("GET", `/v1/profiles/${ref(id)}/messages?limit=50`).catch((error) => ({ error })),
    api("GET", `/v1/profiles/${ref(id)}/journeys`).catch((error) => ({ error })),
    atLeast(identity.role, "data_operator") ? api("GET", `/v1/profiles/${ref(id)}/consent`).catch((error) => ({ error })) : null,
  ]);
  show(
    result,
    h("div", { class: "title" }, h("h2", {}, t("people.profile", { id })), h("button", { type: "button", onclick: () => person(result, wanted, identity, locale) }, t("people.reload"))),
    h("p", { class: "note" }, t("people.seen", { first: when(profile.firstSeen, locale), last: when(profile.lastSeen, locale) })),
    profile.masked ? h("p", { class: "notice", "data-masked": "true" }, t("people.masked")) : null,
    h(
      "div",
      { class: "grid" },
      panel("traits", t("people.traits"), pairs(profile.traits, locale)),
      panel("computed", t("people.computed"), pairs(profile.computed, locale)),
      panel("identities", t("people.identities"), pairs(Object.fromEntries(Object.entries(profile.identities ?? {}).map(([k, v]) => [k, v.join(", ")])), locale)),
      panel("segments", t("people.segments"), segments(profile.segments, locale)),
      panel("tags", t("people.tags"), (profile.tags ?? []).length ? h("p", {}, profile.tags.join(", ")) : h("p", {}, t("people.none"))),
      panel("consents", t("people.consents"), consent === null ? h("p", {}, t("people.consents.role")) : consents(consent, locale)),
    ),
    panel("timeline", t("people.timeline"), events(timeline, locale, id)),
    panel("messages", t("people.messages"), sent(messages, locale)),
    panel("journeys", t("people.journeys"), journeysOf(journeys, locale)),
    panel("merges", t("people.merges"), merges(profile.merges, locale)),
    atLeast(identity.role, "data_operator") ? panel("privacy", t("people.privacy"), requests(id)) : null,
  );
  say("");
}

function panel(name, title, body) {
  return h("section", { class: "card", "data-panel": name, "aria-labelledby": `panel-${name}` }, h("h3", { id: `panel-${name}` }, title), body);
}

function table(head, rows) {
  if (rows.length === 0) return h("p", {}, t("people.none"));
  return h("table", {}, h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col" }, t(name))))), h("tbody", {}, rows));
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

// One row per name; an object of objects (event_counts) gets a row per inner name.
function pairs(object, locale) {
  const entries = Object.entries(object ?? {})
    .flatMap(([name, value]) => (isObject(value) && Object.values(value).every(isObject) && Object.keys(value).length ? Object.entries(value).map(([inner, v]) => [`${name} › ${inner}`, v]) : [[name, value]]))
    .sort(([a], [b]) => a.localeCompare(b));
  return table(["people.name", "people.value"], entries.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, shown(value, locale)))));
}

function segments(memberships, locale) {
  const entries = Object.entries(memberships ?? {});
  return table(["people.name", "people.when"], entries.map(([name, since]) => h("tr", {}, h("td", {}, name), h("td", {}, t("people.segments.since", { when: when(since, locale) })))));
}

function consents(answer, locale) {
  if (answer.error) return h("p", { class: "message" }, explain(answer.error));
  return table(
    ["people.consent.purpose", "people.consent.state", "people.when", "people.origin"],
    (answer.consents ?? []).map((c) => h("tr", {}, h("td", {}, `${c.channel} / ${c.purpose}`), h("td", {}, c.state), h("td", {}, when(c.at, locale)), h("td", {}, c.source ?? "—"))),
  );
}

function describe(event) {
  const shownProperties = event.properties ?? event.traits;
  return shownProperties ? JSON.stringify(shownProperties) : "";
}

const eventRow = (e, locale) => h("tr", { "data-message-id": e.messageId }, h("td", {}, when(e.timestamp, locale)), h("td", {}, e.type), h("td", {}, e.event ?? e.name ?? ""), h("td", { class: "details" }, describe(e)));

// The newest page of events, and a button that appends the next older page while there is one.
function events(answer, locale, id) {
  if (answer.error) return h("p", { class: "message" }, explain(answer.error));
  const shownTable = table(["people.when", "people.type", "people.event", "people.details"], (answer.events ?? []).map((e) => eventRow(e, locale)));
  if (!answer.cursor) return shownTable;
  let cursor = answer.cursor;
  const more = h("button", { type: "button", class: "secondary" }, t("people.more"));
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await api("GET", `/v1/profiles/${ref(id)}/timeline?limit=50&cursor=${encodeURIComponent(cursor)}`);
      shownTable.querySelector("tbody").append(...(page.events ?? []).map((e) => eventRow(e, locale)));
      cursor = page.cursor;
      more.hidden = !cursor;
    } catch (error) {
      say(explain(error));
    } finally {
      more.disabled = false;
    }
  });
  return h("div", {}, shownTable, more);
}

function sent(answer, locale) {
  if (answer.error) return h("p", { class: "message" }, explain(answer.error));
  return table(
    ["people.when", "people.channel", "people.status", "people.origin"],
    (answer.messages ?? []).map((m) => h("tr", {}, h("td", {}, when(m.createdAt, locale)), h("td", {}, `${m.channel ?? ""} ${m.address ?? ""}`.trim()), h("td", {}, m.status), h("td", {}, m.origin ?? "—"))),
  );
}

function journeysOf(answer, locale) {
  if (answer.error) return h("p", { class: "message" }, explain(answer.error));
  return table(
    ["people.journey", "people.status", "people.step", "people.when"],
    (answer.journeys ?? []).map((j) => h("tr", {}, h("td", {}, `${j.journey_id} v${j.journey_version}`), h("td", {}, j.status), h("td", {}, j.step ?? "—"), h("td", {}, when(j.entered_at, locale)))),
  );
}

// Merged profiles and refused merges; identifiers come masked from the API below data_operator.
function merges(records, locale) {
  return table(
    ["people.when", "people.type", "people.details"],
    (records ?? []).map((m) => h("tr", {}, h("td", {}, when(m.at, locale)), h("td", {}, t(m.kind === "refused" ? "people.merge.refused" : "people.merge.merged")), h("td", { class: "details" }, m.kind === "refused" ? `${m.identifier ?? ""} ${m.reason ?? ""}`.trim() : `${m.merged_profile_id ?? ""} ${(m.identifiers ?? []).join(", ")}`.trim()))),
  );
}

// Export and erase: privacy requests about this profile (the whole person, merges included), made
// through /v1/regulations. What the API answers is shown as it is, a refusal included.
function requests(id) {
  const said = h("div", { class: "said", "aria-live": "polite" });
  const ask = (type) => async () => {
    const confirmed = type === "EXPORT" || window.confirm(t("people.erase.confirm"));
    if (!confirmed) return;
    try {
      const answer = await api("POST", "/v1/regulations", { regulationType: type, subjectType: "PROFILE_ID", subjectIds: [id] });
      show(said, h("p", { class: "ok", "data-request": answer.regulateId }, t("people.request.made", { id: answer.regulateId }), " ", h("a", { href: "#/privacy" }, t("people.request.see"))));
    } catch (error) {
      show(said, failure(error));
    }
  };
  return h(
    "div",
    {},
    h("p", { class: "note" }, t("people.privacy.note")),
    h("div", { class: "row" }, act(t("people.export"), ask("EXPORT"), said), act(t("people.erase"), ask("DELETE_ONLY"), said, { class: "danger" })),
    said,
  );
}
