import { contentEventId } from '../event-id.js';
import { accept, describeType, emptyResult, guarded, idOf, isRecord, reject, sanitize, type AdapterContext, type AdapterResult } from './types.js';

/**
 * The privacy route, `POST /v1/privacy/delete` with its own key: `{"userIds": ["u1", ...]}` (or
 * `{"userId": "u1"}`) -> one deletion request per user. The request's arrival is the deletion time,
 * and the id is derived from user and time, so a retried request is recognised as the same one.
 */
export function fromPrivacyRequest(body: unknown, ctx: AdapterContext): AdapterResult {
  return guarded(() => {
    const result = emptyResult();
    const clean = sanitize(body);
    if (!isRecord(clean)) {
      result.rejections.push({ index: -1, reason: `request body must be a JSON object with "userIds", got ${describeType(clean)}` });
      return result;
    }
    const userIds: unknown[] | undefined = Array.isArray(clean.userIds) ? clean.userIds : clean.userId !== undefined ? [clean.userId] : undefined;
    if (userIds === undefined) {
      reject(result, -1, [{ path: 'userIds', message: `must be an array of user ids, got ${describeType(clean.userIds)}` }]);
      return result;
    }
    userIds.forEach((raw, index) => {
      const userId = idOf(raw);
      if (userId === undefined) {
        reject(result, index, [{ path: `userIds.${index}`, message: `must be a user id, got ${describeType(raw)}` }]);
        return;
      }
      accept(
        result,
        index,
        { kind: 'delete', source: 'native', eventId: contentEventId({ deleteUser: userId, at: ctx.receivedAt }), timestamp: ctx.receivedAt, userId },
        { userId: `userIds.${index}` },
      );
    });
    return result;
  });
}
