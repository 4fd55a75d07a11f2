#!/usr/bin/env node
// Vendored from the team's shared conformance kit (../shared/conformance/summarize.mjs) so that CI on a clean
// clone can count results the way cache-tests.fyi does.
// Summarise http-cache-tests (cache-tests.fyi) result files.
//
//   node summarize.mjs [--suite DIR] [--fails] [--json] RESULTS.json
//       one result file: totals, breakdown by test kind, cache-tests.fyi
//       categories and per-group (test file) counts.
//
//   node summarize.mjs --table [--suite DIR] [--groups] [--common N [--cats fail,...]] NAME=FILE.json ...
//       side-by-side table for several result files; --common N lists tests not passing
//       in >= N files (--cats restricts to cache-tests.fyi categories, e.g. fail =
//       required test failed with its dependencies passing; optional_fail; setup_fail).
//
// The result files are what the suite's CLI prints: { "<test-id>": true | ["<ErrorName>", "<message>"] }.
// Kind, group and dependencies are not in the result file, so the test definitions (tests/*.mjs) of an
// installed suite are loaded: by default ./node_modules/http-cache-tests (npm http-cache-tests), or the
// folder in $HTTP_CACHE_TESTS_DIR; --suite DIR forces one. The counting follows cache-tests.fyi's own
// determineTestResult(): a test whose dependency did not pass is a dependency failure, not a failure.

import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL, fileURLToPath } from 'node:url'

const DEFAULT_SUITES = [
  process.env.HTTP_CACHE_TESTS_DIR,
  path.join(process.cwd(), 'node_modules/http-cache-tests')
].filter(Boolean)

// ---------------------------------------------------------------- suite loading

const suiteCache = new Map()
async function loadSuite (dir) {
  dir = path.resolve(dir)
  if (suiteCache.has(dir)) return suiteCache.get(dir)
  const testsDir = path.join(dir, 'tests')
  const index = (await import(pathToFileURL(path.join(testsDir, 'index.mjs')))).default
  const groups = index.slice()
  // npm 0.4.5's cli.mjs appends tests/surrogate-control.mjs, which index.mjs lacks
  const sc = path.join(testsDir, 'surrogate-control.mjs')
  if (fs.existsSync(sc) && fs.existsSync(path.join(dir, 'cli.mjs')) &&
      fs.readFileSync(path.join(dir, 'cli.mjs'), 'utf8').includes('surrogate-control')) {
    const s = (await import(pathToFileURL(sc))).default
    if (!groups.includes(s)) groups.push(s)
  }
  // map group object -> file name
  const fileOf = new Map()
  for (const f of fs.readdirSync(testsDir)) {
    if (!f.endsWith('.mjs') || f === 'index.mjs') continue
    try {
      const mod = await import(pathToFileURL(path.join(testsDir, f)))
      if (mod.default && mod.default.tests) fileOf.set(mod.default, f)
    } catch { /* helper modules */ }
  }
  const tests = new Map() // id -> {test, group, file}
  for (const g of groups) {
    for (const t of g.tests) {
      tests.set(t.id, { test: t, group: g.id, groupName: g.name, file: fileOf.get(g) || '?' })
    }
  }
  // what the CLI actually runs (runner.mjs skips browser_only tests)
  const cliIds = new Set([...tests.values()].filter(x => x.test.browser_only !== true).map(x => x.test.id))
  let version = '?'
  try { version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version } catch { /* no package.json: version unknown */ }
  const layout = fs.existsSync(path.join(dir, 'test-engine')) ? 'git-HEAD(test-engine)' : 'npm-0.4.x(flat)'
  let label = `http-cache-tests ${version} (npm package layout)`
  if (layout.startsWith('git')) {
    let commit = ''
    try { commit = fs.readFileSync(path.join(dir, 'COMMIT'), 'utf8').trim().slice(0, 7) } catch { /* no COMMIT file */ }
    label = `cache-tests git HEAD ${commit} (test-engine layout; package.json says ${version})`
  }
  const s = { dir, groups, tests, cliIds, version, layout, label }
  suiteCache.set(dir, s)
  return s
}

async function pickSuite (results, forced) {
  if (forced) return loadSuite(forced)
  const keys = Object.keys(results)
  let best = null
  for (const d of DEFAULT_SUITES) {
    if (!fs.existsSync(path.join(d, 'tests/index.mjs'))) continue
    const s = await loadSuite(d)
    const known = keys.filter(k => s.tests.has(k)).length
    const missing = [...s.cliIds].filter(k => !(k in results)).length
    const score = known * 1000 - (keys.length - known) * 1000 - missing
    if (!best || score > best.score) best = { s, score }
  }
  if (!best) throw new Error('no test suite definitions found; pass --suite DIR')
  return best.s
}

// ------------------------------------------------- cache-tests.fyi classification
// Re-implementation of determineTestResult() from test-engine/lib/results.mjs
// (identical to lib/display.mjs in npm 0.4.5, plus the AbortError rule of HEAD).

const CAT = {
  untested: '-', pass: 'pass', fail: 'fail', optional_fail: 'optional_fail', yes: 'yes', no: 'no',
  setup_fail: 'setup_fail', harness_fail: 'harness_fail', dependency_fail: 'dependency_fail', retry: 'retry'
}

function kindOf (test) { return test.kind === undefined ? 'required' : test.kind }

function classify (suite, id, results, honorDeps = true, seen = new Set()) {
  const entry = suite.tests.get(id)
  const result = results[id]
  if (result === undefined || !entry) return CAT.untested
  const test = entry.test
  if (honorDeps && test.depends_on !== undefined && !seen.has(id)) {
    seen.add(id) // cycle guard along the current dependency path only
    try {
      for (const dep of test.depends_on) {
        const c = classify(suite, dep, results, true, seen)
        if (c !== CAT.pass && c !== CAT.yes) return CAT.dependency_fail
      }
    } finally { seen.delete(id) }
  }
  if (result[0] === 'Setup') return result[1] === 'retry' ? CAT.retry : CAT.setup_fail
  if (result[0] === 'AbortError') return CAT.harness_fail
  const kind = kindOf(test)
  if (kind === 'required') return result === true ? CAT.pass : CAT.fail
  if (kind === 'optimal') return result === true ? CAT.pass : CAT.optional_fail
  if (kind === 'check') return result === true ? CAT.yes : CAT.no
  throw new Error(`Unrecognised test kind ${test.kind}`)
}

// ------------------------------------------------------------------ summarising

function summarize (suite, results) {
  const ids = Object.keys(results)
  const unknown = ids.filter(id => !suite.tests.has(id))
  const notRun = [...suite.cliIds].filter(id => !(id in results))
  const s = {
    suite: suite.label,
    total: 0, passed: 0, failed: 0,
    unknownIds: unknown, notRun,
    errorNames: {},
    byKind: {},
    categories: {},
    byGroup: {}
  }
  for (const g of suite.groups) {
    s.byGroup[g.id] = { name: g.name, file: null, total: 0, passed: 0, failed: 0, kinds: {}, categories: {} }
  }
  for (const id of ids) {
    const entry = suite.tests.get(id)
    if (!entry) continue
    const r = results[id]
    const ok = r === true
    const kind = kindOf(entry.test)
    const cat = classify(suite, id, results)
    s.total++; if (ok) s.passed++; else s.failed++
    if (!ok) { const n = Array.isArray(r) ? r[0] : String(r); s.errorNames[n] = (s.errorNames[n] || 0) + 1 }
    const k = s.byKind[kind] || (s.byKind[kind] = { total: 0, passed: 0, failed: 0 })
    k.total++; if (ok) k.passed++; else k.failed++
    s.categories[cat] = (s.categories[cat] || 0) + 1
    const g = s.byGroup[entry.group]
    g.file = entry.file
    g.total++; if (ok) g.passed++; else g.failed++
    const gk = g.kinds[kind] || (g.kinds[kind] = { total: 0, passed: 0 })
    gk.total++; if (ok) gk.passed++
    g.categories[cat] = (g.categories[cat] || 0) + 1
  }
  return s
}

// ------------------------------------------------------------------- printing

const pad = (v, n) => String(v).padEnd(n)
const lpad = (v, n) => String(v).padStart(n)
const KINDS = ['required', 'optimal', 'check']
const CAT_ORDER = ['pass', 'fail', 'optional_fail', 'yes', 'no', 'setup_fail', 'dependency_fail', 'retry', 'harness_fail']
const CAT_SYM = { pass: 'pass', fail: 'FAIL(req)', optional_fail: 'opt-fail', yes: 'check-yes', no: 'check-no', setup_fail: 'setup', dependency_fail: 'dep-fail', retry: 'retry', harness_fail: 'harness' }

function printOne (file, suite, s, results, showFails) {
  console.log(`Results: ${file}`)
  console.log(`Test definitions: ${suite.label} (${suite.dir})`)
  if (s.unknownIds.length) console.log(`  WARNING: ${s.unknownIds.length} result ids not in these definitions (ignored): ${s.unknownIds.slice(0, 5).join(', ')}${s.unknownIds.length > 5 ? ' ...' : ''}`)
  if (s.notRun.length) console.log(`  NOTE: ${s.notRun.length} CLI tests have no result: ${s.notRun.slice(0, 5).join(', ')}${s.notRun.length > 5 ? ' ...' : ''}`)
  console.log('')
  console.log(`TOTAL ${s.total} tests: ${s.passed} passed, ${s.failed} failed   (raw: result === true)`)
  console.log(`  failure result names: ${JSON.stringify(s.errorNames)}`)
  console.log('')
  console.log('By kind (kind absent in the test definition = required):')
  for (const k of KINDS.concat(Object.keys(s.byKind).filter(k => !KINDS.includes(k)))) {
    const v = s.byKind[k]; if (!v) continue
    console.log(`  ${pad(k, 9)} ${lpad(v.total, 4)} tests  ${lpad(v.passed, 4)} passed  ${lpad(v.failed, 4)} failed`)
  }
  console.log('')
  console.log('cache-tests.fyi categories (dependencies honoured, as on the site):')
  console.log('  ' + CAT_ORDER.filter(c => s.categories[c]).map(c => `${CAT_SYM[c]}=${s.categories[c]}`).join('  '))
  console.log('')
  console.log('Per group (test file):   total  pass  fail | required p/t | optimal p/t | check yes/t | fyi: FAIL opt-fail setup dep-fail')
  for (const [gid, g] of Object.entries(s.byGroup)) {
    if (!g.total) continue
    const kk = k => g.kinds[k] ? `${g.kinds[k].passed}/${g.kinds[k].total}` : '-'
    const c = g.categories
    console.log(`  ${pad(gid, 19)} ${pad(g.file, 24).slice(0, 24)} ${lpad(g.total, 4)} ${lpad(g.passed, 5)} ${lpad(g.failed, 5)} | ${lpad(kk('required'), 12)} | ${lpad(kk('optimal'), 11)} | ${lpad(kk('check'), 11)} | ${lpad(c.fail || 0, 4)} ${lpad(c.optional_fail || 0, 8)} ${lpad(c.setup_fail || 0, 5)} ${lpad(c.dependency_fail || 0, 8)}`)
  }
  if (showFails) {
    console.log('')
    console.log('Non-passing tests (category, kind, group, id: message):')
    for (const [id, r] of Object.entries(results)) {
      if (r === true || !suite.tests.has(id)) continue
      const e = suite.tests.get(id)
      console.log(`  ${pad(CAT_SYM[classify(suite, id, results)], 10)} ${pad(kindOf(e.test), 8)} ${pad(e.group, 18)} ${id}: ${Array.isArray(r) ? r.join(': ') : r}`)
    }
  }
}

function printTable (entries, showGroups, commonN) {
  const names = entries.map(e => e.name)
  const w = Math.max(9, ...names.map(n => n.length + 1))
  const row = (label, vals) => console.log(pad(label, 26) + vals.map(v => lpad(v, w)).join(''))
  console.log('Side-by-side (raw = result === true; fyi = cache-tests.fyi category with dependencies honoured)')
  row('', names)
  row('test definitions', entries.map(e => e.suite.layout.startsWith('git') ? 'HEAD' : 'npm0.4.5'))
  row('tests in file', entries.map(e => e.s.total))
  row('passed (raw)', entries.map(e => e.s.passed))
  row('failed (raw)', entries.map(e => e.s.failed))
  row('pass %', entries.map(e => (100 * e.s.passed / e.s.total).toFixed(1)))
  for (const k of KINDS) {
    row(`${k} passed/total`, entries.map(e => e.s.byKind[k] ? `${e.s.byKind[k].passed}/${e.s.byKind[k].total}` : '-'))
  }
  for (const c of CAT_ORDER) row(`fyi ${CAT_SYM[c]}`, entries.map(e => e.s.categories[c] || 0))
  if (showGroups) {
    console.log('')
    console.log('Per group: passed/total (raw)')
    const gids = []
    for (const e of entries) for (const gid of Object.keys(e.s.byGroup)) if (!gids.includes(gid)) gids.push(gid)
    for (const gid of gids) {
      row(gid, entries.map(e => {
        const g = e.s.byGroup[gid]; return g && g.total ? `${g.passed}/${g.total}` : '-'
      }))
    }
    console.log('')
    console.log('Per group: required-kind passed/total (raw)')
    for (const gid of gids) {
      row(gid, entries.map(e => {
        const g = e.s.byGroup[gid]; return g && g.kinds.required ? `${g.kinds.required.passed}/${g.kinds.required.total}` : '-'
      }))
    }
  }
  if (commonN) {
    console.log('')
    const catNote = commonCats ? `whose cache-tests.fyi category is ${commonCats.join('|')}` : "that are not 'true'"
    console.log(`Tests ${catNote} in at least ${commonN} of ${entries.length} result files (kind, group, id: those files):`)
    const counts = new Map()
    for (const e of entries) {
      for (const [id, r] of Object.entries(e.results)) {
        if (r === true || !e.suite.tests.has(id)) continue
        if (commonCats && !commonCats.includes(classify(e.suite, id, e.results))) continue
        const c = counts.get(id) || { n: 0, who: [], entry: e.suite.tests.get(id) }
        c.n++; c.who.push(e.name); counts.set(id, c)
      }
    }
    const list = [...counts.entries()].filter(([, c]) => c.n >= commonN)
      .sort((a, b) => b[1].n - a[1].n || a[1].entry.group.localeCompare(b[1].entry.group))
    for (const [id, c] of list) {
      console.log(`  ${lpad(c.n, 2)}  ${pad(kindOf(c.entry.test), 8)} ${pad(c.entry.group, 18)} ${id}: ${c.who.join(',')}`)
    }
  }
}

// ----------------------------------------------------------------------- main

const argv = process.argv.slice(2)
let forced = null; let table = false; let showFails = false; let asJson = false; let showGroups = false; let commonN = 0; let commonCats = null
const files = []
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--suite') forced = argv[++i]
  else if (a === '--table') table = true
  else if (a === '--fails') showFails = true
  else if (a === '--json') asJson = true
  else if (a === '--groups') showGroups = true
  else if (a === '--common') commonN = parseInt(argv[++i], 10)
  else if (a === '--cats') commonCats = argv[++i].split(',')
  else if (a === '-h' || a === '--help') { console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 20).join('\n')); process.exit(0) }
  else files.push(a)
}
if (!files.length) { console.error('usage: summarize.mjs [--suite DIR] [--fails] [--json] RESULTS.json | --table [--groups] [--common N] NAME=FILE ...'); process.exit(2) }

const entries = []
for (const f of files) {
  const eq = f.indexOf('=')
  const name = eq > 0 ? f.slice(0, eq) : path.basename(f, '.json')
  const file = eq > 0 ? f.slice(eq + 1) : f
  const results = JSON.parse(fs.readFileSync(file, 'utf8'))
  const suite = await pickSuite(results, forced)
  entries.push({ name, file, results, suite, s: summarize(suite, results) })
}

if (asJson) {
  console.log(JSON.stringify(entries.map(e => ({ name: e.name, file: e.file, ...e.s })), null, 2))
} else if (table || entries.length > 1) {
  printTable(entries, showGroups, commonN)
} else {
  const e = entries[0]
  printOne(e.file, e.suite, e.s, e.results, showFails)
}
