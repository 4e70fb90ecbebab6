// The console's shell: sign-in, the page router (#/overview, #/people, #/people/<ref>) and the
// language switch. Each page is a module with `render(view, route)`.
import { api, ApiError, atLeast, session } from "./api.js";
import { h, show } from "./dom.js";
import { explain, NOTICE, say } from "./ui.js";
import { language, setLanguage, t, translatePage } from "./i18n.js";
import { needsRole } from "./kit.js";
// Each page and the least role whose key may read it (docs/openapi.yaml's x-minimum-role of the
// routes it needs): its link is hidden below that role, and its address says so instead. A page's
// module is loaded the first time it is opened, so the sign-in needs only the shell's modules.
const PAGES = {
  overview: [() => import("./overview.js"), "viewer"],
  people: [() => import("./people.js"), "viewer"],
  segments: [() => import("./segments.js"), "viewer"],
  campaigns: [() => import("./campaigns.js"), "viewer"],
  experiments: [() => import("./experiments.js"), "viewer"],
  automation: [() => import("./automation.js"), "viewer"],
  privacy: [() => import("./privacy.js"), "data_operator"],
  audit: [() => import("./audit.js"), "admin"],
  settings: [() => import("./settings.js"), "marketer"],
};
const view = document.getElementById("view");

function signIn() {
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "signin-message" });
  const message = h("p", { id: "signin-message", class: "message", role: "alert" });
  const form = h(
    "form",
    { class: "card narrow", onsubmit: (event) => submit(event, input, message) },
    h("h1", {}, t("signin.title")),
    h("p", {}, t("signin.intro")),
    h("label", { for: "key" }, t("signin.key")),
    input,
    message,
    h("button", { type: "submit" }, t("signin.submit")),
  );
  show(view, form);
  message.textContent = sessionStorage.getItem(NOTICE) ?? "";
  sessionStorage.removeItem(NOTICE);
  input.focus();
}

async function submit(event, input, message) {
  event.preventDefault();
  const key = input.value.trim();
  if (!key) {
    message.textContent = t("signin.empty");
    return;
  }
  message.textContent = t("signin.checking");
  try {
    const identity = await api("GET", "/v1/api-keys/current", undefined, key);
    session.open(key, { id: identity.id, name: identity.name, role: identity.role });
    message.textContent = "";
    location.hash = "#/overview";
  } catch (error) {
    message.textContent = error instanceof ApiError && error.status === 401 ? t("signin.invalid") : explain(error);
    input.select();
  }
}

function header(identity, page) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const signout = document.getElementById("signout");
  nav.hidden = who.hidden = signout.hidden = !identity;
  if (identity) who.textContent = t("who", { name: identity.name, role: t(`role.${identity.role}`) });
  who.dataset.role = identity?.role ?? "";
  for (const link of nav.querySelectorAll("a")) {
    link.hidden = !identity || !atLeast(identity.role, PAGES[link.dataset.page][1]);
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// A hash typed or pasted by hand may hold a broken escape: it is then taken as it is.
function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  const [name = "", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const identity = session.identity();
  say("");
  if (!identity || !session.key()) {
    header(null, "");
    if (name !== "signin") history.replaceState(null, "", "#/signin");
    signIn();
    return;
  }
  const page = PAGES[name] ? name : "overview";
  header(identity, page);
  const [module, minimum] = PAGES[page];
  // Each visit draws into its own container: a page still loading when another is opened
  // finishes into a container no longer on the page instead of over the new one.
  const container = h("div", { class: "page" });
  show(view, container);
  if (!atLeast(identity.role, minimum)) {
    show(container, h("h1", {}, t(`nav.${page}`)), needsRole(minimum));
    return;
  }
  module()
    .then((loaded) => loaded.render(container, { identity, args: rest.map(decode), locale: language() }))
    .catch((error) => show(container, h("p", { class: "message", role: "alert" }, explain(error))));
}

const picker = document.getElementById("language");
picker.value = language();
picker.addEventListener("change", () => {
  setLanguage(picker.value);
  translatePage();
  route();
});
document.getElementById("signout").addEventListener("click", () => {
  session.close();
  location.hash = "#/signin";
});
window.addEventListener("hashchange", () => {
  route();
  // A new page takes the focus to its content, unless it put it in a field already.
  if (!view.contains(document.activeElement)) view.focus();
});
translatePage();
route();
// When the first page is ready for input (bench/bench_console.py reads it).
performance.mark("console:interactive");
