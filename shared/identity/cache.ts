import type { IdentityLink } from './store.js';

/**
 * Warm-container cache of session -> link lookups.
 *
 * - A found link is cached for `positiveTtlMs`: only the shard owning a session writes its links
 *   (and updates this cache as it does), so the
 *   only staleness is a link deleted (user deletion) within that time.
 * - "No link yet" is cached only for `negativeTtlMs` (a few seconds): that is the longest this
 *   container can miss a link another shard's invocation has just written.
 * Bounded in size; the least recently used entries go first.
 */
export class LinkCache {
  private readonly entries = new Map<string, { link: IdentityLink | null; expiresAt: number }>();

  constructor(
    private readonly options: { positiveTtlMs: number; negativeTtlMs: number; maxEntries: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** undefined: not cached (ask the table); null: cached as "no link". */
  get(sessionId: string): IdentityLink | null | undefined {
    const entry = this.entries.get(sessionId);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(sessionId);
      return undefined;
    }
    this.entries.delete(sessionId);
    this.entries.set(sessionId, entry);
    return entry.link;
  }

  setLink(link: IdentityLink): void {
    this.put(link.sessionId, link, this.options.positiveTtlMs);
  }

  setMissing(sessionId: string): void {
    if (this.options.negativeTtlMs > 0) this.put(sessionId, null, this.options.negativeTtlMs);
  }

  delete(sessionId: string): void {
    this.entries.delete(sessionId);
  }

  get size(): number {
    return this.entries.size;
  }

  private put(sessionId: string, link: IdentityLink | null, ttlMs: number): void {
    // Always drop the old entry: with caching of links off, a "no link yet" entry must not outlive the link.
    this.entries.delete(sessionId);
    if (ttlMs <= 0 || this.options.maxEntries <= 0) return;
    this.entries.set(sessionId, { link, expiresAt: this.now() + ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}
