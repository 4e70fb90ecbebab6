// The admin API on this page's own origin, with the key kept in this tab's sessionStorage only.
const KEY = "midstage.console.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  identity: () => JSON.parse(sessionStorage.getItem(`${KEY}.identity`) || "null"),
  open(key, identity) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(`${KEY}.identity`, JSON.stringify(identity));
  },
  close() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(`${KEY}.identity`);
  },
};

export async function api(method, path, body, key = session.key(), extra = {}) {
  const headers = { ...extra, authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network", String(error));
  }
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, answer?.code ?? "error", answer?.message ?? response.statusText);
  return answer;
}

// The roles in rank order, as the API ranks them.
export const ROLES = ["viewer", "marketer", "data_operator", "admin"];
export const atLeast = (role, minimum) => ROLES.indexOf(role) >= ROLES.indexOf(minimum);
