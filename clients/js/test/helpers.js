// Test helpers: the real server binary on a free port with a temporary
// SQLite database, tokens, admin calls, and a WebSocket wrapper the tests can
// take offline, cut or freeze (no mock server anywhere).

import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket as NodeWebSocket } from "ws";

const here = dirname(fileURLToPath(import.meta.url));
export const SERVER_BIN = process.env.REALTIME_SERVER_BIN ?? resolve(here, "../../../target/debug/realtime-server");
export const SECRET = "js-client-test-secret";
export const ADMIN_KEY = "js-client-test-admin-key";

const BASE_CONFIG = `
[server]
workers = 2
[rooms]
public = ["lobby", "public:*"]
[rate_limits]
commands_per_second = 100000
commands_burst = 100000
connections_per_ip_per_second = 1000
connections_per_ip_burst = 1000
`;

/**
 * A running server. `restart()` starts a new process on the same port and
 * database; `kill()` is SIGKILL, `terminate()` SIGTERM.
 */
export class TestServer {
  constructor({ config = "", env = {} } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "rt-js-"));
    this.configPath = join(this.dir, "test.toml");
    writeFileSync(this.configPath, BASE_CONFIG + "\n" + config);
    this.env = env;
    this.port = 0;
    this.proc = null;
    this.log = "";
  }

  static async start(opts) {
    const s = new TestServer(opts);
    await s._spawn();
    return s;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }
  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  async _spawn() {
    const env = {
      PATH: process.env.PATH,
      REALTIME_CONFIG: this.configPath,
      REALTIME_PORT: String(this.port),
      REALTIME_JWT_SECRET: SECRET,
      REALTIME_ADMIN_TOKEN: ADMIN_KEY,
      DATABASE_URL: `sqlite://${join(this.dir, "realtime.db")}`,
      RUST_LOG: "warn",
      ...this.env,
    };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const proc = spawn(SERVER_BIN, [], { env, cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stderr.on("data", (d) => {
      this.log += d;
    });
    const addr = await new Promise((resolveAddr, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.log}`)), 20000);
      proc.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${SERVER_BIN}: ${e.message}`));
      });
      proc.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code}) before listening:\n${this.log}`));
      });
      proc.stdout.on("data", (d) => {
        out += d;
        const m = /realtime-server listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolveAddr(m[1]);
        }
      });
    });
    this.port = Number(addr.split(":").pop());
    this.exited = new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal })));
  }

  async kill() {
    this.proc.kill("SIGKILL");
    await this.exited;
  }

  async terminate() {
    this.proc.kill("SIGTERM");
    await this.exited;
  }

  /** A new process on the same port and database. */
  async restart() {
    for (let i = 0; ; i++) {
      try {
        await this._spawn();
        return;
      } catch (e) {
        if (i >= 20) throw e;
        await sleep(100); // the port may still be held for a moment
      }
    }
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A token for `sub`, valid `secs` seconds, allowed in `rooms`. */
  token(sub, { rooms = ["*"], secs = 3600, ...extra } = {}) {
    const now = Math.floor(Date.now() / 1000);
    return mint({ sub, name: `${sub} name`, rooms, iat: now, exp: now + secs, jti: randomUUID(), ...extra });
  }

  async admin(method, path, body) {
    const res = await fetch(this.http + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

export function mint(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64(claims);
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it is true; fails with `what` after `ms`. */
export async function until(cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A WebSocket class (as passed to RealtimeClient) whose network the test
 * controls: `net.offline = true` makes new connections fail (1006),
 * `net.cut()` drops the current ones without a close frame, `net.freeze()`
 * silently swallows everything the server sends (a dead link).
 */
export function controllableNetwork() {
  const net = {
    offline: false,
    frozen: false,
    /** @type {Set<NodeWebSocket>} */
    sockets: new Set(),
    opened: 0,
    /** every frame the client sent, parsed */
    sent: [],
    cut() {
      for (const ws of net.sockets) ws.terminate();
    },
    freeze() {
      net.frozen = true;
    },
  };
  class ControlledWebSocket extends NodeWebSocket {
    constructor(url, protocols) {
      super(net.offline ? "ws://127.0.0.1:9/ws" : url, protocols);
      net.opened++;
      net.sockets.add(this);
      this.addEventListener("close", () => net.sockets.delete(this));
    }
    send(data, ...rest) {
      try {
        net.sent.push(JSON.parse(data));
      } catch {
        /* not JSON */
      }
      return super.send(data, ...rest);
    }
    set onmessage(fn) {
      super.onmessage = fn ? (ev) => (net.frozen ? undefined : fn(ev)) : null;
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  net.WebSocket = ControlledWebSocket;
  return net;
}

/** Records every message the room delivers, and checks the order as it goes. */
export function recorder(room) {
  const seen = [];
  room.on("message", (m) => seen.push(m));
  return seen;
}

/**
 * A TCP proxy to 127.0.0.1:`targetPort` whose network the test controls:
 * `cut()` ends every connection through it at once (what a network loss
 * does to a browser's sockets), and while `offline` is true new ones are
 * refused.
 */
export async function tcpProxy(targetPort) {
  const net = await import("node:net");
  const sockets = new Set();
  const proxy = {
    offline: false,
    port: 0,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close() {
      proxy.cut();
      server.close();
    },
  };
  const server = net.createServer((client) => {
    if (proxy.offline) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  proxy.port = server.address().port;
  return proxy;
}
