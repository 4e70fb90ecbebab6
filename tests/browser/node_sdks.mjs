// The browser tier's Node scenario: one SDK, unchanged but for the host, sends page and track while
// anonymous, identify, group, alias and an order, then flushes. Prints {"errors": [...]} as JSON.
//
//   node node_sdks.mjs <segment|rudderstack> <api url> <write key> <person as JSON>
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [sdk, api, writeKey, personJson] = process.argv.slice(2);
const person = JSON.parse(personJson);
const errors = [];

async function segment() {
  const { Analytics } = require("@segment/analytics-node");
  // The default path is /v1/batch.
  const analytics = new Analytics({ writeKey, host: api });
  analytics.on("error", (error) => errors.push(String(error?.reason ?? error?.code ?? error)));
  const anonymousId = person.anonymous;
  analytics.page({ anonymousId, name: "Pricing", properties: { plan: "pro" } });
  analytics.track({ anonymousId, event: "Product Viewed", properties: { sku: "A-1" } });
  analytics.identify({ userId: person.user, anonymousId, traits: { email: person.email, plan: "pro" } });
  analytics.group({ userId: person.user, groupId: person.group, traits: { name: "Acme" } });
  analytics.alias({ userId: person.user, previousId: person.previous });
  analytics.track({ userId: person.user, event: "Order Completed", properties: { revenue: 42 } });
  await analytics.closeAndFlush({ timeout: 60_000 });
}

async function rudderstack() {
  const Analytics = require("@rudderstack/rudder-sdk-node");
  // The default path is /v1/batch, gzipped.
  const client = new Analytics(writeKey, {
    dataPlaneUrl: api,
    errorHandler: (error) => errors.push(String(error?.message ?? error)),
  });
  const done = (error) => error && errors.push(String(error?.message ?? error));
  const anonymousId = person.anonymous;
  client.page({ anonymousId, name: "Pricing", properties: { plan: "pro" } }, done);
  client.track({ anonymousId, event: "Product Viewed", properties: { sku: "A-1" } }, done);
  client.identify({ userId: person.user, anonymousId, traits: { email: person.email, plan: "pro" } }, done);
  client.group({ userId: person.user, groupId: person.group, traits: { name: "Acme" } }, done);
  client.alias({ userId: person.user, previousId: person.previous }, done);
  client.track({ userId: person.user, event: "Order Completed", properties: { revenue: 42 } }, done);
  await client.flush();
}

const run = { segment, rudderstack }[sdk];
if (!run) {
  console.error(`unknown SDK ${sdk}`);
  process.exit(2);
}
try {
  await run();
} catch (error) {
  errors.push(String(error?.stack ?? error));
}
console.log(JSON.stringify({ errors }));
