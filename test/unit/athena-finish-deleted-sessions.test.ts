import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsArchiveSource } from '../support/fs-adapters.js';
import { deletedUsersOf } from '../../shared/deletion.js';
import { finishKind } from '../../shared/export/athena/finish.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'athena-finish-sessions-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An interaction's sort keys as the rules write them: ord_id is sessionId NUL eventId. */
const row = (userId: string, sessionId: string, eventId: string, ts: number) => ({ user_id: userId, csv_line: `${userId},${eventId}`, ord_ts: ts, ord_id: `${sessionId}\u0000${eventId}` });

describe('the Athena finish step', () => {
  it("leaves out the rows of a deleted user's anonymous session, whatever user they resolved to, and counts them as deleted users' rows", async () => {
    const prefix = 'rows/';
    await mkdir(join(dir, prefix), { recursive: true });
    const rows = [
      row('s-gone', 's-gone', 'e1', 1), // session-as-user: the session is the USER_ID
      row('u-1', 's-kept', 'e2', 2),
      row('u-later', 's-gone', 'e3', 3), // resolved to someone who logged in later on the same session
      row('s-kept-anon', 's-kept-anon', 'e4', 4),
    ];
    await writeFile(join(dir, prefix, '20261123_0000_query.gz'), gzipSync(rows.map((r) => `${JSON.stringify(r)}\n`).join('')));
    const out = join(dir, 'parts');
    await mkdir(out, { recursive: true });
    const result = await finishKind(new FsArchiveSource(dir), {
      prefix,
      dir: out,
      baseName: 'interactions-2026-11-22',
      header: ['USER_ID', 'EVENT'],
      partMaxBytes: 1024,
      // A session id that equals a deleted user id is not a deleted session, and the other way round.
      deleted: deletedUsersOf(['s-kept-anon-user'], ['s-gone', 'u-1']),
    });
    expect(result).toMatchObject({ records: 4, deletedUserRows: 2 });
    expect(await readFile(result.parts[0]!.path, 'utf8')).toBe('USER_ID,EVENT\nu-1,e2\ns-kept-anon,e4\n');
  });
});
