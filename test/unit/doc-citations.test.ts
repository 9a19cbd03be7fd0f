import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Code comments cite the fact sheet, the design and the README by section ("FACTS §4c",
 * DESIGN "Contracts", README "Consent"). Each must resolve inside the repository, for someone who
 * clones it without the team folder.
 */

const ROOT = join(import.meta.dirname, '../..');
const SOURCE_DIRS = ['functions', 'shared', 'schemas', 'local', 'cli', 'bench', 'serverless'];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|cjs|yml|json)$/.test(f) && !f.includes('node_modules'))
    .map((f) => join(dir, f));
}

const files = [...SOURCE_DIRS.flatMap(sources), 'serverless.yml'];
const headings = (doc: string) =>
  readFileSync(join(ROOT, doc), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => l.replace(/^#+\s*/, ''));
const factHeadings = headings('docs/FACTS.md');
const designText = readFileSync(join(ROOT, 'docs/DESIGN.md'), 'utf8');
const readmeHeadings = headings('README.md').map((h) => h.toLowerCase());

function citations(pattern: RegExp): { file: string; cited: string }[] {
  return files.flatMap((file) => [...readFileSync(join(ROOT, file), 'utf8').matchAll(pattern)].map((m) => ({ file, cited: m[1]! })));
}

describe('citations in code resolve inside the repository', () => {
  it('every FACTS §N / §Na names a section of docs/FACTS.md', () => {
    const cited = citations(/FACTS §(\d+[a-z]?)/g);
    expect(cited.length).toBeGreaterThan(100);
    const missing = cited.filter(({ cited: s }) => !factHeadings.some((h) => h.startsWith(`${s}.`) || h.startsWith(`${s} `)));
    expect(missing).toEqual([]);
  });

  it('every DESIGN "X" names a heading or a bold term of docs/DESIGN.md', () => {
    const missing = citations(/DESIGN "([^"]+)"/g).filter(({ cited }) => !designText.includes(`## ${cited}`) && !designText.includes(`**${cited}**`));
    expect(missing).toEqual([]);
  });

  it('every README "X" names a heading of the README', () => {
    const cited = citations(/README "([^"]+)"/g);
    expect(cited.length).toBeGreaterThan(10);
    const missing = cited.filter(({ cited: c }) => !readmeHeadings.some((h) => h.includes(c.toLowerCase())));
    expect(missing).toEqual([]);
  });
});
