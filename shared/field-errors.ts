import type { z } from 'zod';

/**
 * Where a message is wrong and why, as every answer and dead letter reports it
 * (README "The front doors" and README "Dead-letter records"). Its own module: the collector needs
 * it without the stream decoder (and its KPL de-aggregation library) in its bundle.
 */
export interface FieldError {
  path: string;
  message: string;
}

export function formatIssues(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(message)', message: issue.message }));
}

export function describeErrors(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('; ');
}
