/** Splits items into consecutive groups of at most `size` (API per-call limits). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Splits items, in order, into groups within a count limit and a byte limit (SQS and Kinesis
 * batch calls have both). An item larger than the byte limit still gets a group of its own: the
 * caller decides what to do with it.
 */
export function packBySize<T>(items: readonly T[], sizeOf: (item: T) => number, maxCount: number, maxBytes: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length === maxCount || (current.length > 0 && bytes + size > maxBytes)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
