// What the pages share: the status line and how an API error is put into words.
import { ApiError, session } from "./api.js";
import { t } from "./i18n.js";

export const NOTICE = "midstage.console.notice";

export function say(message) {
  document.getElementById("status").textContent = message;
}

// A key that stopped working sends the person back to sign in.
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 401) {
    session.close();
    // Said again on the sign-in page, which the status line does not outlive.
    sessionStorage.setItem(NOTICE, t("error.expired"));
    location.hash = "#/signin";
    return t("error.expired");
  }
  if (error.status === 0) return t("error.network", { message: error.message });
  return t("error.api", { status: error.status, message: error.message });
}
