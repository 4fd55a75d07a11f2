/**
 * Child processes in the LMDB tests run plain `node`, which cannot load TypeScript. This transpiles the
 * cache-store modules the tier needs (following its relative imports) into a scratch directory under
 * node_modules/.cache (inside the project, so `lmdb` and `http-cache-semantics` resolve), without touching
 * dist/ and without depending on the rest of the project compiling.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ChildBuild {
  /** file: URL of the transpiled lmdb-tier.js. */
  tierModule: string;
  remove(): void;
}

export function buildTierForChildren(): ChildBuild {
  const cache = join(root, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'edgecache-lmdb-test-'));
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  const done = new Set<string>();
  const queue = ['cache-store/lmdb/lmdb-tier.ts'];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(join(root, file), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    const target = join(out, file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
    // Runtime imports that survived transpilation, relative to this file.
    for (const match of outputText.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g)) {
      queue.push(join(dirname(file), `${match[1] as string}.ts`));
    }
  }
  return {
    tierModule: pathToFileURL(join(out, 'cache-store', 'lmdb', 'lmdb-tier.js')).href,
    remove: () => rmSync(out, { recursive: true, force: true }),
  };
}
