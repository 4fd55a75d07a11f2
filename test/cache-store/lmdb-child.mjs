// A second process for the LMDB tier tests. Loads the transpiled tier from $TIER_MODULE (see child-build.ts).
//   node lmdb-child.mjs burst <path>   write entries forever, printing "committed <n>" after each commit
//   node lmdb-child.mjs share <path>   read the parent's entry, write a few, wait for "exit" on stdin
//   node lmdb-child.mjs fail <path>    run under a file-size limit: writes that cannot grow the file fail
//   node lmdb-child.mjs full <path>    on a small filesystem that the parent fills to the last block ("filled"
//                                      on stdin) and later frees ("freed"): writes on the full disk, then after
//                                      the space is freed
import { createHash, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

const [mode, path] = process.argv.slice(2);
const { LmdbTier } = await import(process.env.TIER_MODULE);

const unhandled = [];
process.on('unhandledRejection', (err) => unhandled.push(String(err)));

const lines = [];
const log = {
  info: (obj, msg) => lines.push({ level: 'info', msg }),
  warn: (obj, msg) => lines.push({ level: 'warn', msg }),
  error: (obj, msg) => lines.push({ level: 'error', msg }),
};

function sha256(body) {
  return createHash('sha256').update(body).digest('hex');
}

function entry(key, body, tags = []) {
  const now = Date.now();
  const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=3600', 'x-body-sha256': sha256(body) };
  const lifetime = 3_600_000;
  const meta = {
    key,
    primaryKey: key,
    status: 200,
    headers,
    storedAt: now,
    vary: null,
    tags,
    deletableAt: now + lifetime,
    ageBase: now,
    lifetime,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    mustRevalidate: false,
    hasValidator: false,
  };
  return { kind: 'entry', meta, body };
}

function bodyDigest(body) {
  const hash = createHash('sha256');
  if (Buffer.isBuffer(body)) hash.update(body);
  else for (const chunk of body.chunks(0, body.length)) hash.update(chunk);
  return hash.digest('hex');
}

function open(maxBytes) {
  return new LmdbTier({
    path,
    maxBytes,
    now: Date.now,
    log,
    sweepIntervalMs: 0,
    atimeFlushMs: 0,
  });
}

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

if (mode === 'burst') {
  // Overwrites (40 keys), evictions (8 MiB budget) and bodies of 0 to ~700 KB, half of them small enough to be
  // stored inline in the meta record (up to 64 KiB), committed in groups of 8.
  const tier = open(8 * 1024 * 1024);
  for (let n = 0; ; ) {
    for (let i = 0; i < 8; i++, n++) {
      const key = `burst.test/${n % 40}`;
      const body = randomBytes(Math.floor(Math.random() * (n % 2 === 0 ? 70_000 : 700_000)));
      tier.set(key, entry(key, body, [`group-${n % 3}`]));
    }
    await tier.flushed();
    send({ committed: n });
  }
} else if (mode === 'share') {
  const tier = open(64 * 1024 * 1024);
  const fromParent = tier.get('parent.test/p');
  const written = {};
  for (const [key, size] of [
    ['child.test/small', 10_000],
    ['child.test/big', 1_500_000],
    ['child.test/' + 'long/'.repeat(500), 3_000],
  ]) {
    const e = entry(key, randomBytes(size), ['shared']);
    tier.set(key, e);
    written[key] = e.meta.headers['x-body-sha256'];
  }
  await tier.flushed();
  send({
    parentEntry: fromParent ? { key: fromParent.meta.key, digest: bodyDigest(fromParent.body), header: fromParent.meta.headers['x-body-sha256'] } : null,
    written,
  });
  for await (const line of createInterface({ input: process.stdin })) if (line === 'exit') break;
  await tier.close();
  process.stdin.destroy();
  send({ closed: true, unhandled });
} else if (mode === 'fail') {
  const tier = open(256 * 1024 * 1024);
  const early = {};
  for (let i = 0; i < 5; i++) {
    const e = entry(`early.test/${i}`, randomBytes(1_000));
    tier.set(`early.test/${i}`, e);
    early[`early.test/${i}`] = e.meta.headers['x-body-sha256'];
  }
  await tier.flushed();
  // Each of these needs ~1 MB of new pages: more than the file may grow.
  let threw = null;
  try {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 6; i++) tier.set(`big.test/${round}/${i}`, entry(`big.test/${round}/${i}`, randomBytes(1_000_000)));
      await tier.flushed();
    }
  } catch (err) {
    threw = String(err);
  }
  const earlyOk = Object.entries(early).every(([key, digest]) => {
    const got = tier.get(key);
    return got !== undefined && bodyDigest(got.body) === digest;
  });
  const bigFound = Array.from({ length: 6 }, (_, i) => tier.get(`big.test/0/${i}`) !== undefined).filter(Boolean).length;
  await tier.flushAccessTimes();
  // A delete queued with a write that cannot be stored must still take effect (it fits in the file and commits;
  // were its commit to fail, the key would stay hidden and the delete be retried alone a second later).
  tier.set('big.test/with-delete', entry('big.test/with-delete', randomBytes(1_000_000)));
  tier.delete('early.test/0');
  await tier.flushed();
  const hiddenAfterFailedDelete = tier.get('early.test/0') === undefined && !tier.keys('early.test/').includes('early.test/0');
  await new Promise((resolve) => setTimeout(resolve, 1_300));
  await tier.flushed();
  // The last commit before close() fails: close() must still finish.
  tier.set('big.test/last', entry('big.test/last', randomBytes(1_000_000)));
  await tier.flushed();
  const stats = tier.stats();
  await tier.close();
  send({ stats, earlyOk, bigFound, hiddenAfterFailedDelete, threw, unhandled, lines });
} else if (mode === 'full') {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const waitFor = async (word) => {
    for (let next = await lines.next(); !next.done; next = await lines.next()) if (next.value === word) return;
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const tier = open(256 * 1024 * 1024);
  // ~12 MB first, so that LMDB's page offsets have 8 digits (the length of lmdb-js's error message matters).
  const seeds = {};
  for (let i = 0; i < 12; i++) {
    const e = entry(`seed.test/${i}`, randomBytes(1_000_000));
    tier.set(`seed.test/${i}`, e);
    seeds[`seed.test/${i}`] = e.meta.headers['x-body-sha256'];
    await tier.flushed();
  }
  send({ ready: true, stats: tier.stats() });
  await waitFor('filled');
  // Commits of three growing bodies each, on a filesystem without a free block (as in the crash: lmdb-js's
  // message for such a failed write overflows its buffer once the sizes in it have enough digits).
  for (let round = 0; round < 24; round++) {
    for (let i = 0; i < 3; i++) tier.set(`full.test/${round}/${i}`, entry(`full.test/${round}/${i}`, randomBytes(300_000 + round * 150_000)));
    await tier.flushed();
  }
  const check = () =>
    Object.entries(seeds).every(([key, sha]) => {
      const got = tier.get(key);
      return got === undefined || bodyDigest(got.body) === sha;
    });
  send({ whileFull: tier.stats(), seedsIntact: check(), integrity: tier.checkIntegrity().problems, unhandled });
  await waitFor('freed');
  // Once the pause ends and the filesystem has room again, writes go on and the file grows into it.
  const before = tier.stats().fileBytes;
  let stored = 0;
  for (let n = 0, deadline = Date.now() + 10_000; Date.now() < deadline && (stored < 4 || tier.stats().fileBytes <= before); n++) {
    const key = `after.test/${n}`;
    tier.set(key, entry(key, randomBytes(300_000)));
    await tier.flushed();
    if (tier.get(key) !== undefined) stored++;
    await sleep(100);
  }
  send({ after: tier.stats(), stored, fileBefore: before, seedsIntact: check(), integrity: tier.checkIntegrity().problems, unhandled });
  await tier.close();
  process.stdin.destroy();
  send({ closed: true });
} else {
  throw new Error(`unknown mode ${mode}`);
}
