// flowbook's Node.js preload: send the built-in fetch and the http/https modules through the
// proxy named by HTTPS_PROXY / HTTP_PROXY (honouring NO_PROXY), on Node versions that ignore
// those variables. Loaded with NODE_OPTIONS="--import <this file>" by `flowbook run` and
// `Monitor.client_env()`; bundled with undici by widgets/build.mjs into
// flowbook/static/node/proxy_preload.mjs.
//
// Why: before Node 24, Node's fetch (which the official openai and @anthropic-ai/sdk packages
// use) and http.request ignore proxy variables, so an agent written in Node would talk to its
// provider directly and nothing would be captured. From Node 24 NODE_USE_ENV_PROXY=1 does the
// same natively (fetch from 24.0, http/https from 24.5), and this file steps aside.
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";

const env = process.env;
const [major, minor] = process.versions.node.split(".").map(Number);
const nativeFetch = major >= 24 && env.NODE_USE_ENV_PROXY === "1";
const nativeHttp = nativeFetch && (major > 24 || minor >= 5);

const pick = (...names) => {
  for (const n of names) if (env[n] !== undefined) return env[n];
  return "";
};
const httpsProxy = pick("https_proxy", "HTTPS_PROXY");
const httpProxy = pick("http_proxy", "HTTP_PROXY");
const noProxy = pick("no_proxy", "NO_PROXY")
  .split(/[\s,]+/)
  .map((s) => s.trim().toLowerCase())
  .filter(Boolean);

/** Proxy URL (or null) for a request to host:port over http or https; NO_PROXY wins. */
function proxyFor(protocol, host, port) {
  const proxy = protocol === "https:" ? httpsProxy || httpProxy : httpProxy;
  if (!proxy) return null;
  const h = String(host).toLowerCase().replace(/^\[|\]$/g, "");
  for (const entry of noProxy) {
    if (entry === "*") return null;
    const [eh, ep] = entry.startsWith("[")
      ? [entry.slice(1, entry.indexOf("]")), entry.split("]:")[1]]
      : entry.split(":");
    if (ep && Number(ep) !== Number(port)) continue;
    const bare = eh.replace(/^\*?\./, "");
    if (h === bare || h.endsWith("." + bare)) return null;
  }
  let url;
  try {
    url = new URL(proxy.includes("://") ? proxy : `http://${proxy}`);
  } catch {
    return null; // a malformed proxy variable must not break the program: go direct
  }
  // A request to the proxy itself (a client that does its own proxying) is never tunnelled.
  const ph = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const pp = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  if (ph === h && pp === Number(port)) return null;
  return url;
}

/** Open a CONNECT tunnel to host:port through the proxy; cb(err, socket). */
function tunnel(proxy, host, port, cb) {
  const pport = Number(proxy.port || (proxy.protocol === "https:" ? 443 : 80));
  const phost = proxy.hostname.replace(/^\[|\]$/g, "");
  const sock =
    proxy.protocol === "https:"
      ? tls.connect({ host: phost, port: pport, servername: net.isIP(phost) ? undefined : phost })
      : net.connect({ host: phost, port: pport });
  const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  let head = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
  if (proxy.username) {
    const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    head += `Proxy-Authorization: Basic ${Buffer.from(cred).toString("base64")}\r\n`;
  }
  let buf = Buffer.alloc(0);
  const fail = (err) => {
    sock.destroy();
    cb(err);
  };
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    sock.removeListener("data", onData);
    sock.removeListener("error", fail);
    const status = buf.subarray(0, buf.indexOf("\r\n")).toString("latin1");
    if (!/^HTTP\/1\.[01] 2\d\d/.test(status)) {
      fail(new Error(`proxy ${proxy.host} refused CONNECT ${target}: ${status}`));
      return;
    }
    const rest = buf.subarray(end + 4);
    if (rest.length) sock.unshift(rest);
    cb(null, sock);
  };
  sock.on("data", onData);
  sock.once("error", fail);
  sock.once(proxy.protocol === "https:" ? "secureConnect" : "connect", () => sock.write(head + "\r\n"));
}

class ProxyHttpAgent extends http.Agent {
  createConnection(options, cb) {
    const proxy = proxyFor("http:", options.host, options.port);
    if (!proxy) return super.createConnection(options, cb);
    tunnel(proxy, options.host, options.port, cb);
    return undefined; // Node's Agent waits for cb when nothing is returned
  }
}

class ProxyHttpsAgent extends https.Agent {
  createConnection(options, cb) {
    const proxy = proxyFor("https:", options.host, options.port);
    if (!proxy) return super.createConnection(options, cb);
    tunnel(proxy, options.host, options.port, (err, raw) => {
      if (err) return cb(err);
      const servername = options.servername || (net.isIP(options.host) ? undefined : options.host);
      const secure = tls.connect({ ...options, socket: raw, servername });
      let done = false; // an error after the hand-over belongs to the request, not to us
      const finish = (e, s) => {
        if (!done) {
          done = true;
          cb(e, s);
        }
      };
      secure.once("secureConnect", () => finish(null, secure));
      secure.once("error", (e) => finish(e));
    });
    return undefined;
  }
}

if ((httpsProxy || httpProxy) && !nativeFetch) {
  // Node's fetch and the npm undici package both read the global dispatcher set here.
  setGlobalDispatcher(new EnvHttpProxyAgent());
}
if ((httpsProxy || httpProxy) && !nativeHttp) {
  http.globalAgent = new ProxyHttpAgent({ keepAlive: true });
  https.globalAgent = new ProxyHttpsAgent({ keepAlive: true });
}
