import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';

/**
 * JSON as the sources mean it. mParticle's `mpid`, `event_id` and `session_id` are int64
 * (docs/FACTS.md §6b): `JSON.parse` rounds them past 2^53, so two people become one user and
 * distinct events collapse into "duplicates". An integer that a double cannot hold exactly becomes
 * its exact decimal string; every other number is an ordinary number.
 *
 * Only a text with a run of 16 or more digits can hold such an integer (2^53 has 16 digits), so
 * everything else takes the native parser (bench/collector.ts measures both paths).
 */
const LONG_DIGIT_RUN = /\d{16}/;

function exactNumber(text: string): number | string {
  if (isSafeNumber(text)) return Number(text);
  // Past 2^53: an integer keeps its digits (ids); a fraction loses only precision it could not carry.
  return isInteger(text) ? text : Number(text);
}

export function parseJsonExact(text: string): unknown {
  if (!LONG_DIGIT_RUN.test(text)) return JSON.parse(text) as unknown;
  return parseLossless(text, null, exactNumber);
}
