import { describe, expect, it } from 'vitest';
import { chooseImportMode, importJobName, parsePartFileName, partBaseName, planImports, resolveJobName, type PlanFile } from '../../shared/export/plan.js';
import type { ImportJobSummary } from '../../shared/export/ports.js';

const DATASET = 'arn:aws:personalize:us-east-1:123456789012:dataset/shop/INTERACTIONS';
const job = (jobName: string, status: string): ImportJobSummary => ({ jobName, jobArn: `arn:x:${jobName}`, status });
const file = (name: string, rows: number, bytes: number, origin: PlanFile['origin'] = 'new'): PlanFile => ({ name, rows, bytes, origin });

describe('choosing the import mode', () => {
  it('imports FULL while the dataset has no bulk import at all', () => {
    expect(chooseImportMode('auto', [])).toEqual({ mode: 'FULL' });
    expect(chooseImportMode('auto', [job('old', 'CREATE FAILED')])).toEqual({ mode: 'FULL' });
  });

  it('imports INCREMENTAL once an import is ACTIVE', () => {
    expect(chooseImportMode('auto', [job('a', 'CREATE FAILED'), job('b', 'ACTIVE')])).toEqual({ mode: 'INCREMENTAL' });
    expect(chooseImportMode('INCREMENTAL', [job('b', 'ACTIVE')])).toEqual({ mode: 'INCREMENTAL' });
  });

  it('waits while the first import is still running instead of starting a second FULL', () => {
    const decision = chooseImportMode('auto', [job('first', 'CREATE IN_PROGRESS')]);
    expect(decision).toEqual({ hold: expect.stringContaining('first is CREATE IN_PROGRESS') as unknown });
  });

  it('holds an INCREMENTAL request the service would refuse, and honours FULL when asked', () => {
    expect(chooseImportMode('INCREMENTAL', [])).toEqual({ hold: expect.stringContaining('only FULL is allowed') as unknown });
    expect(chooseImportMode('FULL', [job('b', 'ACTIVE')])).toEqual({ mode: 'FULL' });
  });

  it('never imports a re-publication (a delta of the day) FULL: it would replace all bulk data', () => {
    expect(chooseImportMode('FULL', [job('b', 'ACTIVE')], true)).toEqual({ hold: expect.stringContaining('already published') as unknown });
    expect(chooseImportMode('auto', [job('b', 'ACTIVE')], true)).toEqual({ mode: 'INCREMENTAL' });
    expect(chooseImportMode('auto', [job('b', 'CREATE PENDING')], true)).toEqual({ hold: expect.stringContaining('b is CREATE PENDING') as unknown });
  });
});

describe('part file names', () => {
  it('carry kind, date, revision and part, and read legacy names as revision 1', () => {
    expect(partBaseName('interactions', '2026-11-22', 3)).toBe('interactions-2026-11-22-r3');
    expect(parsePartFileName('interactions-2026-11-22-r3-002.csv')).toEqual({ kind: 'interactions', date: '2026-11-22', revision: 3, part: 2 });
    expect(parsePartFileName('users-2026-11-22-001.csv')).toEqual({ kind: 'users', date: '2026-11-22', revision: 1, part: 1 });
    for (const bad of ['items-2026-11-22-r0-001.csv', 'items-2026-11-22-r1-01.csv', 'other-2026-11-22-001.csv', 'items-2026-11-22-r1-001.csv.bak']) {
      expect(parsePartFileName(bad)).toBeUndefined();
    }
    expect(() => partBaseName('items', '2026-11-22', 0)).toThrow(RangeError);
  });
});

describe('import job names', () => {
  it('are the same for the same dataset, kind, day, revision and part, and fit the jobName rules', () => {
    const name = importJobName('interactions', '2026-11-22', DATASET, 1, 1);
    expect(name).toBe(importJobName('interactions', '2026-11-22', DATASET, 1, 1));
    expect(name).toMatch(/^pi-interactions-20261122-[0-9a-f]{8}-r1-01$/);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9\-_]*$/);
  });

  it('differ between datasets, days, revisions and parts', () => {
    const names = new Set([
      importJobName('interactions', '2026-11-22', DATASET, 1, 1),
      importJobName('interactions', '2026-11-22', DATASET.replace('shop', 'staging'), 1, 1),
      importJobName('interactions', '2026-11-23', DATASET, 1, 1),
      importJobName('interactions', '2026-11-22', DATASET, 2, 1),
      importJobName('interactions', '2026-11-22', DATASET, 1, 2),
      importJobName('interactions', '2026-11-22', DATASET, 12, 1),
      importJobName('users', '2026-11-22', DATASET, 1, 1),
    ]);
    expect(names.size).toBe(7);
  });

  it('fit 63 characters at the largest revision and retry suffix', () => {
    const longest = resolveJobName(importJobName('interactions', '2026-11-22', DATASET, 999_999, 99), Array.from({ length: 98 }, (_, i) =>
      job(i === 0 ? importJobName('interactions', '2026-11-22', DATASET, 999_999, 99) : `${importJobName('interactions', '2026-11-22', DATASET, 999_999, 99)}-a${i + 1}`, 'CREATE FAILED'),
    ));
    expect(longest.jobName).toMatch(/-r999999-99-a99$/);
    expect(longest.jobName.length).toBeLessThanOrEqual(63);
  });

  it('retry a failed job as -a2, -a3 (never -r: that is the revision), and adopt a live job of the name', () => {
    const planned = importJobName('items', '2026-11-22', DATASET, 2, 1);
    expect(resolveJobName(planned, [])).toEqual({ jobName: planned });
    expect(resolveJobName(planned, [job(planned, 'CREATE FAILED'), job(`${planned}-a2`, 'CREATE FAILED')])).toEqual({ jobName: `${planned}-a3` });
    expect(resolveJobName(planned, [job(planned, 'CREATE FAILED'), job(`${planned}-a2`, 'ACTIVE')])).toEqual({ jobName: `${planned}-a2`, known: job(`${planned}-a2`, 'ACTIVE') });
    // A live job of the name that holds other files is passed over like a failed one.
    expect(resolveJobName(planned, [job(planned, 'ACTIVE')], new Set([planned]))).toEqual({ jobName: `${planned}-a2` });
    expect(resolveJobName(planned, [job(`${planned}-a2`, 'ACTIVE')])).toEqual({ jobName: planned });
  });

  it('give up after 99 failed attempts of one name, naming it', () => {
    const failed = [job('pi-x', 'CREATE FAILED'), ...Array.from({ length: 98 }, (_, i) => job(`pi-x-a${i + 2}`, 'CREATE FAILED'))];
    expect(() => resolveJobName('pi-x', failed)).toThrow(/pi-x failed 99 times/);
  });
});

describe('planning import jobs', () => {
  const base = { kind: 'interactions' as const, date: '2026-11-22', datasetArn: DATASET, revision: 2, minRows: 1000, maxJobBytes: 1000 };

  it('holds a day below 1,000 interactions', () => {
    const plan = planImports({ ...base, mode: 'INCREMENTAL', files: [file('a.csv', 999, 100)] });
    expect(plan.jobs).toEqual([]);
    expect(plan.held).toEqual([{ files: [file('a.csv', 999, 100)], rows: 999, reason: expect.stringContaining('below the minimum of 1000') as unknown }]);
  });

  it('imports held files together with the new day in one folder job', () => {
    const files = [file('old.csv', 600, 300, 'pending'), file('new.csv', 500, 300)];
    const plan = planImports({ ...base, mode: 'INCREMENTAL', files });
    expect(plan.jobs).toEqual([
      { jobName: importJobName('interactions', '2026-11-22', DATASET, 2, 1), importMode: 'INCREMENTAL', files, rows: 1100, bytes: 600 },
    ]);
    expect(plan.held).toEqual([]);
  });

  it('packs files in order into jobs no larger than the byte limit', () => {
    const files = [file('1.csv', 2000, 600), file('2.csv', 2000, 600), file('3.csv', 2000, 300), file('4.csv', 100, 50)];
    const plan = planImports({ ...base, mode: 'INCREMENTAL', files });
    expect(plan.jobs.map((j) => j.files.map((f) => f.name))).toEqual([['1.csv'], ['2.csv', '3.csv', '4.csv']]);
    expect(plan.jobs.map((j) => j.jobName.slice(-6))).toEqual(['-r2-01', '-r2-02']);
    expect(plan.jobs.every((j) => j.bytes <= 1000)).toBe(true);
  });

  it('starts only the first group in FULL mode and holds the rest until that import is ACTIVE', () => {
    const plan = planImports({ ...base, mode: 'FULL', files: [file('1.csv', 2000, 800), file('2.csv', 2000, 800)] });
    expect(plan.jobs.map((j) => [j.importMode, j.files.map((f) => f.name)])).toEqual([['FULL', ['1.csv']]]);
    expect(plan.held.map((h) => h.files.map((f) => f.name))).toEqual([['2.csv']]);
    expect(plan.held[0]?.reason).toMatch(/FULL import is starting/);
  });

  it('imports any non-empty items or users file (the minimum is for interactions) and skips empty ones', () => {
    const plan = planImports({ ...base, kind: 'items', minRows: 1, mode: 'FULL', files: [file('empty.csv', 0, 40), file('i.csv', 3, 90)] });
    expect(plan.jobs.map((j) => j.files.map((f) => f.name))).toEqual([['i.csv']]);
  });
});
