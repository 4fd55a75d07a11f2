// The soak's clients: each picks a kind of request, sends it with a deadline, and checks the answer against what
// the origin serves for that URL and version. Every outcome is tallied by kind; every wrong answer is recorded
// with its kind of error.
import http from 'node:http';
import { describe, etag, etagVersion, body as expectedBody } from './bodies.mjs';
import { languageOf, LANGUAGES, lengthOf, REVAL_PERIOD_MS, variantId } from './origin.mjs';

/** Request kinds and their weights in the mix. */
const KINDS = [
  ['hot', 34],
  ['miss', 12],
  ['old', 6],
  ['reval', 8],
  ['vary', 5],
  ['head', 5],
  ['conditional', 5],
  ['404', 5],
  ['500', 2],
  ['reset-mid', 1.5],
  ['reset-head', 1.5],
  ['stall', 0.5],
  ['big', 1],
];

export const HOT_GROUPS = 20;
export const HOT_PER_GROUP = 10;
const OLD_KEPT = 5000;
const MAX_BIG_IN_FLIGHT = 2;

/** Errors that are not failures: what killing a worker on purpose does to the requests it was serving. */
export const EXPECTED = new Set(['worker-killed']);

/** A small seeded PRNG (mulberry32), so that a seed gives the same mix of requests. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hotPath(group, n) {
  return `/hot/g${group}/${n}`;
}

export class Traffic {
  constructor({ port, origin, concurrency, deadlineMs, random, log }) {
    this.port = port;
    this.origin = origin;
    this.concurrency = concurrency;
    this.deadlineMs = deadlineMs;
    this.random = random;
    this.log = log;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    /** kind → { requests, ok, errors, xcache: {HIT: n, ...}, ms: [] } */
    this.byKind = new Map();
    /** error kind → { count, examples: [] } */
    this.errors = new Map();
    /** hot path → { version, at, soft }: after `at`, nothing older than `version` may be served. */
    this.floors = new Map();
    /** [from, to] windows (epoch ms) in which connection errors are the expected effect of a killed worker. */
    this.killWindows = [];
    this.old = [];
    this.sequence = 0;
    this.bigInFlight = 0;
    this.stopping = false;
    this.total = 0;
    const weight = KINDS.reduce((n, [, w]) => n + w, 0);
    let acc = 0;
    this.cumulative = KINDS.map(([kind, w]) => [kind, (acc += w / weight)]);
  }

  /** Runs the clients until stop() is called; resolves when every request in flight has settled. */
  run() {
    this.running = Promise.all(Array.from({ length: this.concurrency }, () => this.client()));
    return this.running;
  }

  stop() {
    this.stopping = true;
    return this.running;
  }

  close() {
    this.agent.destroy();
  }

  async client() {
    while (!this.stopping) {
      await this.one(this.pick());
    }
  }

  pick() {
    const r = this.random();
    for (const [kind, upTo] of this.cumulative) if (r < upTo) return kind;
    return 'hot';
  }

  hot() {
    // Skewed: a few hot URLs take most requests.
    const i = Math.floor(HOT_GROUPS * HOT_PER_GROUP * this.random() ** 2);
    return hotPath(Math.floor(i / HOT_PER_GROUP), i % HOT_PER_GROUP);
  }

  /** The request for a kind: method, path, headers, and whether it needs a connection of its own. */
  build(kind) {
    const n = ++this.sequence;
    switch (kind) {
      case 'hot':
        return { method: 'GET', path: this.hot() };
      case 'miss': {
        const path = `/miss/${n}-${Math.floor(this.random() * 1e9).toString(36)}`;
        this.old.push(path);
        if (this.old.length > OLD_KEPT) this.old.splice(0, this.old.length - OLD_KEPT);
        return { method: 'GET', path };
      }
      case 'old':
        return { method: 'GET', path: this.old.length > 0 ? this.old[Math.floor(this.random() * this.old.length)] : `/miss/${n}` };
      case 'reval':
        return { method: 'GET', path: `/reval/${Math.floor(this.random() * 20)}` };
      case 'vary': {
        const language = [...LANGUAGES, 'es'][Math.floor(this.random() * (LANGUAGES.length + 1))];
        return { method: 'GET', path: `/vary/${Math.floor(this.random() * 10)}`, headers: { 'accept-language': `${language},en;q=0.5` } };
      }
      case 'head':
        return { method: 'HEAD', path: this.hot() };
      case 'conditional': {
        const path = this.hot();
        return { method: 'GET', path, headers: { 'if-none-match': etag(path, this.origin.versionOf(path)) } };
      }
      case '404':
        return { method: 'GET', path: `/404/${this.random() < 0.5 ? n : Math.floor(this.random() * 50)}` };
      case '500':
        return { method: 'GET', path: `/500/${n}` };
      case 'reset-mid':
        return { method: 'GET', path: `/reset/mid/${n}`, fresh: true };
      case 'reset-head':
        return { method: 'GET', path: `/reset/head/${n}`, fresh: true };
      case 'stall':
        return { method: 'GET', path: `/stall/${n}`, fresh: true };
      case 'big':
        return { method: 'GET', path: `/big/${Math.floor(this.random() * 4)}` };
      default:
        throw new Error(`unknown kind ${kind}`);
    }
  }

  async one(kind) {
    if (kind === 'big') {
      if (this.bigInFlight >= MAX_BIG_IN_FLIGHT) kind = 'hot';
      else this.bigInFlight++;
    }
    const request = this.build(kind);
    let result = await this.send(request);
    // A keep-alive connection the server closed just as it was reused: the standard retry, once, on a new one.
    if (result.status === undefined && result.reusedSocket && !result.hung && !request.fresh) {
      this.tally(kind).retried++;
      result = await this.send({ ...request, fresh: true });
    }
    if (kind === 'big') this.bigInFlight--;
    this.total++;
    const stats = this.tally(kind);
    stats.requests++;
    stats.ms.push(result.ms);
    if (result.status !== undefined) {
      const xcache = String(result.headers['x-cache'] ?? 'none');
      stats.xcache[xcache] = (stats.xcache[xcache] ?? 0) + 1;
    }
    const problem = this.check(kind, request, result);
    if (problem === undefined) {
      stats.ok++;
      return;
    }
    stats.errors++;
    this.error(problem.kind, { kind, method: request.method, path: request.path, status: result.status, detail: problem.detail, at: result.startedAt });
  }

  tally(kind) {
    let stats = this.byKind.get(kind);
    if (stats === undefined) this.byKind.set(kind, (stats = { requests: 0, ok: 0, errors: 0, retried: 0, xcache: {}, ms: [] }));
    return stats;
  }

  error(kind, example) {
    let entry = this.errors.get(kind);
    if (entry === undefined) this.errors.set(kind, (entry = { count: 0, examples: [] }));
    entry.count++;
    if (entry.examples.length < 5) entry.examples.push(example);
    if (!EXPECTED.has(kind) && entry.count <= 3) this.log(`error ${kind}: ${example.method} ${example.path} → ${example.status ?? '-'} ${example.detail ?? ''}`);
  }

  /** One request with a deadline; never rejects. */
  send({ method, path, headers = {}, fresh = false }) {
    return new Promise((resolve) => {
      const startedAt = Date.now();
      const chunks = [];
      let response;
      let settled = false;
      let req;
      const done = (extra) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          startedAt,
          ms: Date.now() - startedAt,
          status: response?.statusCode,
          headers: response?.headers ?? {},
          body: Buffer.concat(chunks),
          complete: response?.complete === true,
          reusedSocket: req.reusedSocket,
          ...extra,
        });
      };
      const timer = setTimeout(() => {
        done({ hung: true });
        req.destroy();
      }, this.deadlineMs);
      req = http.request({ host: '127.0.0.1', port: this.port, method, path, headers, agent: fresh ? false : this.agent }, (res) => {
        response = res;
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => done({}));
        res.on('error', (err) => done({ error: err.code ?? err.message }));
        res.on('close', () => done(res.complete ? {} : { error: 'closed before the end' }));
      });
      req.on('error', (err) => done({ error: err.code ?? err.message }));
      req.end();
    });
  }

  /** Whether a request that failed at `at` may have been cut by the worker killed on purpose. */
  inKillWindow(at) {
    return this.killWindows.some(([from, to]) => at >= from && at <= to);
  }

  /** What is wrong with a result, if anything: { kind, detail }. */
  check(kind, request, result) {
    if (result.hung) return { kind: 'hang', detail: `no complete answer within ${this.deadlineMs} ms` };
    if (result.status === undefined) {
      if (this.inKillWindow(result.startedAt + result.ms)) return { kind: 'worker-killed', detail: result.error };
      if (kind === 'reset-mid' || kind === 'reset-head') return { kind: 'empty-reply-on-origin-reset', detail: result.error };
      return { kind: 'connection-error', detail: result.error };
    }
    const { status } = result;
    switch (kind) {
      case 'reset-mid':
      case 'reset-head':
        if (status === 502) return undefined;
        if (status === 200 && !result.complete) return undefined; // the truncation shows: the client sees the cut
        if (status === 200) return { kind: 'complete-response-on-origin-reset', detail: `${result.body.length} bytes` };
        return { kind: status >= 500 ? 'unexpected-5xx' : 'unexpected-status', detail: `expected 502 or a cut-off 200` };
      case 'stall':
        return status === 504 ? undefined : { kind: 'stall-not-504', detail: `status ${status}` };
      case '500':
        return status === 500 ? this.checkText(result, `origin error ${request.path}\n`) : { kind: status >= 500 ? 'unexpected-5xx' : 'unexpected-status', detail: 'expected the origin 500' };
      case '404':
        return status === 404 ? this.checkText(result, `not found ${request.path}\n`) : this.wrongStatus(status, 404);
      default:
    }
    if (!result.complete) {
      if (this.inKillWindow(result.startedAt + result.ms)) return { kind: 'worker-killed', detail: result.error };
      return { kind: 'truncated', detail: `${result.body.length} bytes, ${result.error}` };
    }
    if (kind === 'head') return this.checkHead(request, result);
    if (kind === 'conditional' && status === 304) return this.checkVersion(request.path, etagVersion(result.headers.etag), result);
    if (status !== 200) return this.wrongStatus(status, 200);
    return this.checkBody(kind, request, result);
  }

  wrongStatus(status, expected) {
    return { kind: status >= 500 ? 'unexpected-5xx' : 'unexpected-status', detail: `expected ${expected}` };
  }

  checkText(result, text) {
    return result.body.toString() === text ? undefined : { kind: 'wrong-body', detail: JSON.stringify(result.body.subarray(0, 60).toString()) };
  }

  checkLength(result) {
    const declared = result.headers['content-length'];
    if (declared !== undefined && Number(declared) !== result.body.length) {
      return { kind: 'length-mismatch', detail: `Content-Length ${declared}, body ${result.body.length}` };
    }
    return undefined;
  }

  checkBody(kind, request, result) {
    const lengthProblem = this.checkLength(result);
    if (lengthProblem) return lengthProblem;
    const { path } = request;
    const seen = describe(result.body);
    const id = kind === 'vary' ? variantId(path, languageOf(request.headers?.['accept-language'])) : path;
    if (seen === undefined) return { kind: 'wrong-body', detail: 'not a soak body' };
    if (seen.id !== id) {
      if (kind === 'vary' && seen.id.startsWith(`${path}|`)) return { kind: 'wrong-variant', detail: `asked ${id}, got ${seen.id}` };
      return { kind: 'wrong-body', detail: `body of ${seen.id}` };
    }
    if (seen.length !== lengthOf(path) || !result.body.equals(expectedBody(id, seen.version, seen.length))) {
      return { kind: 'wrong-body', detail: `bytes differ from ${id} v${seen.version}` };
    }
    const tagVersion = etagVersion(result.headers.etag);
    if (tagVersion !== undefined && tagVersion !== seen.version) return { kind: 'wrong-body', detail: `ETag v${tagVersion} on a body of v${seen.version}` };
    return this.checkVersion(path, seen.version, result);
  }

  checkHead(request, result) {
    if (result.status !== 200) return this.wrongStatus(result.status, 200);
    if (result.body.length !== 0) return { kind: 'wrong-body', detail: 'HEAD with a body' };
    const declared = result.headers['content-length'];
    if (declared !== undefined && Number(declared) !== lengthOf(request.path)) {
      return { kind: 'length-mismatch', detail: `HEAD Content-Length ${declared}, GET body ${lengthOf(request.path)}` };
    }
    return this.checkVersion(request.path, etagVersion(result.headers.etag), result);
  }

  /** The version served must exist, must not predate a purge answered before the request, nor be too stale. */
  checkVersion(path, version, result) {
    if (version === undefined) return { kind: 'wrong-body', detail: 'no version (ETag) on the answer' };
    const end = result.startedAt + result.ms;
    if (version > this.origin.versionOf(path, end)) return { kind: 'future-version', detail: `v${version} > origin's v${this.origin.versionOf(path, end)}` };
    const floor = this.floors.get(path);
    if (floor !== undefined && result.startedAt > floor.at && version < floor.version) {
      return { kind: floor.soft ? 'older-version-after-soft-purge' : 'older-version-after-purge', detail: `v${version} served ${result.startedAt - floor.at} ms after a purge answered (v${floor.version})` };
    }
    if (path.startsWith('/reval/')) {
      // max-age=1: what is served may be a second old, plus slack for a loaded machine; never a whole period.
      const oldest = this.origin.revalVersion(result.startedAt - 1000 - REVAL_PERIOD_MS / 2);
      if (version < oldest) return { kind: 'too-stale', detail: `v${version}, expected at least v${oldest}` };
    }
    return undefined;
  }
}
