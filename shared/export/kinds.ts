/** The kinds the export writes, one dataset each. The rules for their rows are SQL: ./sql/rules.ts. */
export type ExportKind = 'interactions' | 'items' | 'users';
export const EXPORT_KINDS: readonly ExportKind[] = ['interactions', 'items', 'users'];
