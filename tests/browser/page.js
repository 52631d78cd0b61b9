// The browser side of tests/browser/test_browser.py: Apache Thrift's JavaScript library (XHRConnection +
// TJSONProtocol, its defaults unless a test says otherwise) with code Apache's compiler generated from
// aioaccess's IDL.  Query string: phase (same|cross), fetch, store, store2 (endpoint URLs), report (where the
// results go), next (the page to load afterwards), id (the Communication stored first, and fetched from the
// other origin).  Results are POSTed to `report` as JSON.
const thrift = require("thrift");
const FetchCommunicationService = require("./build/gen/FetchCommunicationService");
const StoreCommunicationService = require("./build/gen/StoreCommunicationService");
const access = require("./build/gen/access_types");

const params = new URLSearchParams(location.search);
const THRIFT = { "Content-Type": "application/x-thrift" };

function client(service, url, headers) {
  const u = new URL(url);
  const connection = thrift.createXHRConnection(u.hostname, u.port, { path: u.pathname, headers: headers });
  return thrift.createXHRClient(service, connection);
}

// The library only settles on an HTTP 200; anything else would hang for ever.
function settle(promise, ms) {
  const timeout = new Promise((resolve) => setTimeout(() => resolve({ ok: false, error: "timeout" }), ms));
  return Promise.race([
    Promise.resolve(promise).then((value) => ({ ok: true, value: value }),
                                  (err) => ({ ok: false, error: String((err && err.message) || err) })),
    timeout,
  ]);
}

async function rawStore(url, body, headers) {  // the browser's own fetch(), to see what CORS lets through
  try {
    const resp = await fetch(url, { method: "POST", body: body, headers: headers });
    return { ok: true, status: resp.status, text: await resp.text() };
  } catch (err) {
    return { ok: false, error: String(err) };
  }
}

async function same(out) {
  const fetcher = client(FetchCommunicationService, params.get("fetch"), {});  // the library's defaults
  out.count = await settle(fetcher.getCommunicationCount().then(Number), 10000);  // an Int64
  const ids = await settle(fetcher.getCommunicationIDs(0, 1000), 10000);
  out.ids = ids;
  const result = await settle(fetcher.fetch(new access.FetchRequest({ communicationIds: ids.value || [] })), 10000);
  out.fetched = result.ok ? result.value.communications.map((c) => c.id) : result;
  if (!result.ok) return;
  const first = result.value.communications.find((c) => c.id === params.get("id"));
  const comms = [first, ...result.value.communications.filter((c) => c !== first)];
  // Defaults: no Content-Type, so store refuses; the refusal must reach the page as an error, not a hang.
  out.storeDefaults = await settle(client(StoreCommunicationService, params.get("store"), {}).store(comms[0]), 10000);
  const octet = client(StoreCommunicationService, params.get("store"), { "Content-Type": "application/octet-stream" });
  out.storeOctet = await settle(octet.store(comms[0]), 10000);
  const store = client(StoreCommunicationService, params.get("store"), THRIFT);
  out.stored = {};
  for (const comm of comms.slice(1)) out.stored[comm.id] = await settle(store.store(comm), 10000);
}

async function cross(out) {
  const fetcher = client(FetchCommunicationService, params.get("fetch"), {});
  const result = await settle(fetcher.fetch(new access.FetchRequest({ communicationIds: ["missing", params.get("id")] })),
                              10000);
  out.fetched = result.ok ? result.value.communications.map((c) => c.id) : result;
  const body = '[1,"store",1,1,{"1":{"rec":{"1":{"str":"evil"},"2":{"rec":{"1":{"str":"' +
               "00000000-0000-0000-0000-000000000000" + '"}}},"3":{"str":"evil"}}}}]';
  out.storePreflighted = await rawStore(params.get("store"), body, THRIFT);  // preflight refused
  out.storeSimple = await rawStore(params.get("store"), body, {});  // no preflight: text/plain, refused by type
  if (!result.ok) return;
  const store2 = client(StoreCommunicationService, params.get("store2"), THRIFT);  // --cors-store allows this
  out.stored2 = await settle(store2.store(result.value.communications[0]), 10000);
}

async function main() {
  const out = { phase: params.get("phase"), origin: location.origin };
  try {
    await (out.phase === "same" ? same(out) : cross(out));
  } catch (err) {
    out.exception = String((err && err.stack) || err);
  }
  await fetch(params.get("report"), { method: "POST", body: JSON.stringify(out), mode: "no-cors" });
  if (params.get("next")) location.href = params.get("next");
}

main();
