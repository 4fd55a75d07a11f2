function bench(label) {
  return new Promise((resolve) => {
    const N = 300000; let i = 0; const t = performance.now();
    const f = () => { if (++i < N) process.nextTick(f); else { console.log(label, ((performance.now() - t) * 1e6 / N).toFixed(0), 'ns/tick'); resolve(); } };
    process.nextTick(f);
  });
}
await bench('fresh');
const which = process.argv[2];
if (which === 'fastify') await import('fastify');
if (which === 'lmdb') await import('lmdb');
if (which === 'prom') { const p = await import('prom-client'); p.collectDefaultMetrics(); }
if (which === 'undici') await import('undici');
if (which === 'all') { const m = await import('../dist/proxy/edgecache.js'); }
await bench('after ' + which);
await bench('after ' + which);
process.exit(0);
